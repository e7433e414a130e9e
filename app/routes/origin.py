"""Say, on the response, whose key served it: the caller's or the platform's."""

from fastapi import Response

from app.user_keys import UserKeys
from providers import ProviderName

KEY_ORIGIN_HEADER = "X-Keyscope-Key-Origin"


def record_key_origin(response: Response, keys: UserKeys, provider: ProviderName) -> None:
    """Sets `X-Keyscope-Key-Origin: user|platform` (the key itself is already resolved and
    cached for the request, so this decrypts nothing new)."""
    response.headers[KEY_ORIGIN_HEADER] = keys.require(provider).origin.value
