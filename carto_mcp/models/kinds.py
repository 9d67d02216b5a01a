"""The kinds of credential, named once: every layer speaks of them with these types.

The CLI's type words are accepted as aliases when listing (`tokens`, and `oauth` for both
client kinds), as `carto credentials list` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

#: A credential: an API Access Token, or an SPA or M2M OAuth client.
CredentialKind = Literal["token", "spa", "m2m"]
#: The OAuth-client subset of CredentialKind (what the OAuth clients API serves).
ClientKind = Literal["spa", "m2m"]
#: What `list_credentials` accepts: every kind, the CLI's aliases, or all of them.
ListKind = Literal["all", "token", "tokens", "spa", "m2m", "oauth"]

KINDS: Final[tuple[CredentialKind, ...]] = ("token", "spa", "m2m")
CLIENT_KINDS: Final[tuple[ClientKind, ...]] = ("spa", "m2m")
#: The kinds each list word stands for, in the order a listing walks them.
LIST_KINDS: Final[Mapping[ListKind, tuple[CredentialKind, ...]]] = {
    "all": KINDS,
    "token": ("token",),
    "tokens": ("token",),
    "spa": ("spa",),
    "m2m": ("m2m",),
    "oauth": CLIENT_KINDS,
}
