"""Argument types shared by several tools: their JSON schema is what the model reads."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from carto_mcp.models.kinds import CredentialKind, ListKind
from carto_mcp.models.schema import Maybe

KindArg = Annotated[
    CredentialKind,
    Field(description="Credential kind: 'token' (API Access Token), 'spa' or 'm2m' (OAuth clients)."),
]
ListKindArg = Annotated[
    ListKind,
    Field(description="Which credentials: all, token (alias tokens), spa, m2m, or oauth (spa and m2m)."),
]
CredentialId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=8192,
        pattern=r"^[A-Za-z0-9._~-]+$",
        description=(
            "The credential's id: for a token the short id from list_credentials (its jti, e.g. '3f9a1c2e') "
            "or the full token value; for an OAuth client its client id."
        ),
    ),
]
ConfirmArg = Annotated[
    Maybe[Annotated[str, Field(max_length=200)]],
    Field(
        description=(
            "Confirmation code from a previous call's preview (clients without elicitation). Omit it on the "
            "first call: nothing changes and the preview returns the code."
        ),
    ),
]
SecretFileArg = Annotated[
    Maybe[Annotated[str, Field(max_length=4096)]],
    Field(
        description=(
            "Absolute path of a .env-style file to write the secret to (mode 0600) instead of returning it. "
            "The result then only names the file and the variables."
        ),
    ),
]
Overwrite = Annotated[
    bool, Field(default=False, description="Replace the variable if secret_output_file already defines it.")
]
ProfileArg = Annotated[
    Maybe[Annotated[str, Field(max_length=128)]],
    Field(
        description="CARTO profile to act as (only those the server allows with --profiles; see list_profiles). "
        "Default: the server's profile.",
    ),
]
SecretVariable = Annotated[str, Field(max_length=128, description="Variable name used in secret_output_file.")]
Url = Annotated[str, Field(min_length=1, max_length=2048)]
UrlList = Annotated[list[Url], Field(max_length=100)]
