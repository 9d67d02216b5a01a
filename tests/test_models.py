"""The option tables: every rule with an accepted and a rejected example."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from carto_mcp.models import (
    Grant,
    M2MCreate,
    OAuthClientUpdate,
    SpaCreate,
    TokenCreate,
    TokenState,
    TokenUpdate,
    classify_source,
    parse_expiry,
)
from carto_mcp.models.rules import RuleError, check_pattern, format_expiry

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def grant(source: str, kind: str | None = None, connection: str = "carto_dw") -> dict[str, str | None]:
    return {"connection": connection, "source": source, "kind": kind}


def errors_of(exc: ValidationError) -> str:
    return " | ".join(str(e["msg"]) for e in exc.errors())


class TestCliExamples:
    """The three `carto credentials create token` examples from the CLI reference are accepted as written."""

    def test_single_fully_qualified_source_is_accepted(self) -> None:
        """--connection carto_dw --source carto.shared.demo_table --apis sql,maps."""
        token = TokenCreate(grants=[grant("carto.shared.demo_table")], apis=["sql", "maps"])
        assert token.to_wire()["grants"] == [{"connection_name": "carto_dw", "source": "carto.shared.demo_table"}]
        assert token.grants[0].kind == "table"
        assert any("SQL API" in w for w in token.warnings)

    def test_wildcard_pattern_with_two_segments_is_accepted_without_breadth_warning(self) -> None:
        """--source "carto.shared.CARTO_*" is a pattern with two segments before the wildcard."""
        token = TokenCreate(grants=[grant("carto.shared.CARTO_*")], apis=["sql", "maps"])
        assert token.grants[0].kind == "pattern"
        assert not any("fewer than two" in w for w in token.warnings)

    def test_all_sources_with_name_and_shorthand_expiry_is_accepted(self) -> None:
        """--source "*" --name demo-day-token --expiration-date 7d resolves the expiry to a UTC date."""
        token = TokenCreate(grants=[grant("*")], apis=["sql", "maps"], name="demo-day-token", expiration_date="7d")
        wire = token.to_wire()
        assert wire["name"] == "demo-day-token"
        expires = datetime.strptime(wire["expiration_date"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        assert timedelta(days=6, hours=23) < expires - datetime.now(timezone.utc) <= timedelta(days=7)
        assert token.warnings == []


class TestGrantKinds:
    @pytest.mark.parametrize(
        ("source", "kind"),
        [
            ("*", "all"),
            ("carto.shared.*", "pattern"),
            ("SELECT * FROM t WHERE x = @param", "query"),
            ("  with a as (select 1) select * from a", "query"),
            ("my_named_source", "named_source"),
            ("project.dataset.table", "table"),
        ],
    )
    def test_kind_is_inferred_from_the_source(self, source: str, kind: str) -> None:
        """The inference table of carto-api.md: '*', '*' inside, SELECT/WITH, bare name, else FQN."""
        assert classify_source(source) == kind
        assert Grant.model_validate(grant(source)).kind == kind

    def test_an_explicit_kind_wins_over_inference(self) -> None:
        """A caller may state the kind; a query that does not look like one draws a warning, not an error."""
        g = Grant.model_validate(grant("my_view_text", kind="query"))
        assert g.kind == "query"
        assert g.warnings

    @pytest.mark.parametrize(
        ("source", "kind", "message"),
        [
            ("table*", None, "at least one dot"),
            ("carto.**", None, "'**'"),
            ("NoDotsHere", None, "neither a fully qualified name"),
            ("x.y", "all", "needs source '*'"),
            ("Bad Name!", "named_source", "not a valid name"),
            ("", None, "at least 1 character"),
        ],
    )
    def test_invalid_sources_are_rejected_with_the_fix(self, source: str, kind: str | None, message: str) -> None:
        """Patterns without a dot, '**', bare uppercase names, mismatched kinds and empty sources are refused."""
        with pytest.raises(ValidationError) as info:
            Grant.model_validate(grant(source, kind))
        assert message in errors_of(info.value)

    def test_a_broad_pattern_draws_a_warning(self) -> None:
        """`carto.*.demo_*` is valid per the manual but has fewer than two segments before the wildcard."""
        assert check_pattern("carto.*.demo_*")
        assert check_pattern("carto.shared.demo_*") == []

    def test_unknown_grant_fields_are_refused(self) -> None:
        """A typo in a grant must not silently drop part of it."""
        with pytest.raises(ValidationError):
            Grant.model_validate({"connection": "c", "source": "*", "sorce": "x"})


class TestApis:
    def test_imports_alone_is_accepted(self) -> None:
        """The Import API is allowed on its own."""
        assert TokenCreate(apis=["imports"]).apis == ["imports"]

    def test_imports_combined_with_another_api_is_rejected(self) -> None:
        """'imports' cannot be combined with other APIs (user manual)."""
        with pytest.raises(ValidationError) as info:
            TokenCreate(grants=[grant("*")], apis=["imports", "sql"])
        assert "imports" in errors_of(info.value) and "cannot be combined" in errors_of(info.value)

    @pytest.mark.parametrize("api", ["sql", "maps"])
    def test_sql_and_maps_need_a_grant(self, api: str) -> None:
        """sql/maps without any grant are refused; with one they are accepted."""
        with pytest.raises(ValidationError) as info:
            TokenCreate(apis=[api])
        assert "grants" in errors_of(info.value)
        assert TokenCreate(apis=[api], grants=[grant("*")]).apis == [api]

    def test_lds_needs_no_grant(self) -> None:
        """The LDS API works without grants; grants on an lds-only token draw a warning."""
        assert TokenCreate(apis=["lds"]).warnings == []
        assert TokenCreate(apis=["lds"], grants=[grant("*")]).warnings

    def test_table_grant_on_sql_only_token_warns_but_is_accepted(self) -> None:
        """A table grant is useless for SQL: a warning returned with the result, not an error."""
        token = TokenCreate(apis=["sql"], grants=[grant("a.b.c")])
        assert any("no other API" in w for w in token.warnings)

    @pytest.mark.parametrize("apis", [[], ["mcp"], ["SQL"]])
    def test_empty_or_unknown_apis_are_rejected(self, apis: list[str]) -> None:
        """allowed_apis must be a non-empty subset of sql, maps, imports, lds."""
        with pytest.raises(ValidationError):
            TokenCreate(apis=apis, grants=[grant("*")])

    def test_duplicate_apis_are_collapsed(self) -> None:
        """Repeating an API is harmless and normalized away."""
        assert TokenCreate(apis=["maps", "maps"], grants=[grant("*")]).apis == ["maps"]


class TestReferers:
    @pytest.mark.parametrize("url", ["https://carto.com", "https://carto.com/"])
    def test_a_site_in_one_form_gets_a_neutral_note_suggesting_both(self, url: str) -> None:
        """CARTO's documents disagree on the trailing slash: either form alone draws the same note, naming both."""
        warnings = TokenCreate(apis=["lds"], referers=[url]).warnings
        assert len(warnings) == 1
        assert "'https://carto.com' and 'https://carto.com/'" in warnings[0]
        assert "disagree" in warnings[0]

    def test_a_site_in_both_forms_or_a_page_url_draws_no_note(self) -> None:
        both = ["https://carto.com", "https://carto.com/"]
        assert TokenCreate(apis=["lds"], referers=both).warnings == []
        assert TokenCreate(apis=["lds"], referers=["https://carto.com/app/"]).warnings == []

    @pytest.mark.parametrize("url", ["carto.com", "ftp://carto.com/", "https://", "not a url"])
    def test_malformed_referers_are_rejected(self, url: str) -> None:
        """Referers must be absolute http(s) URLs."""
        with pytest.raises(ValidationError) as info:
            TokenCreate(apis=["lds"], referers=[url])
        assert "referer" in errors_of(info.value)


class TestExpiry:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2027-01-01", "2027-01-01T00:00:00Z"),
            ("2027-01-01T12:30:00Z", "2027-01-01T12:30:00Z"),
            ("2027-01-01T12:30:00+02:00", "2027-01-01T10:30:00Z"),
            ("2027-01-01T12:30:00", "2027-01-01T12:30:00Z"),
            ("1d", "2026-11-24T12:00:00Z"),
            ("2w", "2026-12-07T12:00:00Z"),
            ("6m", "2027-05-23T12:00:00Z"),
            ("1y", "2027-11-23T12:00:00Z"),
            ("7d", "2026-11-30T12:00:00Z"),
        ],
    )
    def test_dates_datetimes_and_shorthand_normalize_to_utc(self, text: str, expected: str) -> None:
        """ISO dates and datetimes and Nd/Nw/Nm/Ny all become ISO 8601 UTC."""
        assert format_expiry(parse_expiry(text, now=NOW)) == expected

    def test_month_arithmetic_clamps_to_the_month_end(self) -> None:
        """One month after January 31st is the last day of February."""
        jan31 = datetime(2027, 1, 31, tzinfo=timezone.utc)
        assert format_expiry(parse_expiry("1m", now=jan31)) == "2027-02-28T00:00:00Z"

    @pytest.mark.parametrize("text", ["2020-01-01", "2026-11-23T11:59:59Z", "0d"])
    def test_past_or_zero_expiry_is_rejected(self, text: str) -> None:
        """The expiry must lie in the future."""
        with pytest.raises(RuleError) as info:
            parse_expiry(text, now=NOW)
        assert "expiration_date" in str(info.value)

    @pytest.mark.parametrize("text", ["tomorrow", "2027-13-01", "5x"])
    def test_unreadable_expiry_is_rejected_by_the_schema(self, text: str) -> None:
        """Anything but a date or Nd/Nw/Nm/Ny is refused before it reaches the API."""
        with pytest.raises(ValidationError):
            TokenCreate(apis=["lds"], expiration_date=text)


class TestTokenUpdate:
    def test_expiry_on_update_is_refused_with_the_reason(self) -> None:
        """CARTO fixes a token's expiry at creation."""
        with pytest.raises(ValidationError) as info:
            TokenUpdate(expiration_date="7d")
        assert "cannot be changed" in errors_of(info.value)

    def test_an_empty_update_is_refused(self) -> None:
        """Nothing to change is a mistake worth saying."""
        with pytest.raises(ValidationError) as info:
            TokenUpdate()
        assert "nothing to change" in errors_of(info.value)

    def test_add_and_remove_grants_merge_like_the_cli(self) -> None:
        """add_grants appends (no duplicates), remove_grants drops; losses name what goes."""
        before = TokenState(grants=[Grant(**grant("a.b.c")), Grant(**grant("*"))], apis=["maps"])
        change = TokenUpdate(
            add_grants=[Grant(**grant("x.y.z")), Grant(**grant("*"))], remove_grants=[Grant(**grant("a.b.c"))]
        )
        after = change.apply(before)
        assert [g.source for g in after.grants] == ["*", "x.y.z"]
        assert before.losses(after) == ["grant carto_dw:a.b.c"]
        assert after.patch_body(before)["grants"][1] == {"connection_name": "carto_dw", "source": "x.y.z"}

    def test_removing_a_grant_the_token_lacks_is_refused(self) -> None:
        """remove_grants must name an existing grant."""
        before = TokenState(grants=[Grant(**grant("*"))], apis=["maps"])
        with pytest.raises(ValueError, match="has no grant"):
            TokenUpdate(remove_grants=[Grant(**grant("q.r.s"))]).apply(before)

    def test_an_odd_existing_grant_does_not_block_an_unrelated_change(self) -> None:
        """A grant CARTO accepted earlier is carried as is: renaming the token sends only the name."""
        legacy = Grant.model_construct(connection="carto_dw", source="Legacy View", kind="table")
        before = TokenState.of(name="old", grants=[legacy], apis=["maps"], referers=[])
        after = TokenUpdate(name="renamed").apply(before)
        assert after.patch_body(before) == {"name": "renamed"}
        assert after.warnings() == []

    def test_merged_token_is_rechecked_against_the_api_rules(self) -> None:
        """Removing the last grant of a maps token is refused like a create would be."""
        before = TokenState(grants=[Grant(**grant("*"))], apis=["maps"])
        after = TokenUpdate(remove_grants=[Grant(**grant("*"))]).apply(before)
        with pytest.raises(RuleError, match="grants"):
            after.warnings()


class TestOAuthClients:
    def test_spa_with_all_cli_options_is_accepted_and_mapped_to_wire_names(self) -> None:
        """The `carto credentials create spa` example maps onto the Auth0-style wire fields."""
        spa = SpaCreate(
            title="My Web App",
            callbacks=["https://myapp.com/callback"],
            logout_urls=["https://myapp.com/logout"],
            web_origins=["https://myapp.com"],
            allowed_origins=["https://myapp.com"],
        )
        assert spa.to_wire() == {
            "app_type": "spa",
            "name": "My Web App",
            "callbacks": ["https://myapp.com/callback"],
            "allowed_logout_urls": ["https://myapp.com/logout"],
            "web_origins": ["https://myapp.com"],
            "allowed_origins": ["https://myapp.com"],
        }

    @pytest.mark.parametrize("model", [SpaCreate, M2MCreate])
    def test_title_is_required(self, model: type) -> None:
        """--title is required for SPA and M2M clients."""
        with pytest.raises(ValidationError) as info:
            model()
        assert "title" in str(info.value)

    def test_malformed_callback_is_rejected(self) -> None:
        """URL lists hold absolute http(s) URLs."""
        with pytest.raises(ValidationError) as info:
            SpaCreate(title="x", callbacks=["myapp/callback"])
        assert "callbacks" in errors_of(info.value)

    def test_m2m_update_accepts_only_a_title(self) -> None:
        """M2M clients have only a title; SPA URL fields are refused for them."""
        OAuthClientUpdate(title="New").check_kind("m2m")
        with pytest.raises(ValueError, match="SPA clients only"):
            OAuthClientUpdate(callbacks=["https://a.com/cb"]).check_kind("m2m")

    def test_replacing_a_url_list_reports_what_it_drops(self) -> None:
        """An update that removes URLs is destructive and names them."""
        change = OAuthClientUpdate(callbacks=["https://new.com/cb"])
        assert change.losses({"callbacks": ["https://old.com/cb", "https://new.com/cb"]}) == [
            "callback https://old.com/cb"
        ]
