"""`constructed(exchange_class, config)`: `exchange_class(config)`, in about a millisecond instead of fifteen.

ccxt's constructor walks every attribute of the new client (thousands: one per API endpoint) to give each
snake_case name its camelCase twin, and deep-merges the exchange's whole description into it: about 15 ms of
CPU per client on a small machine, so 15 s of start-up for 1,000 accounts, while the event loop also serves the
accounts already started. What it builds depends only on the class and the configuration; an account's
credentials are plain values it sets as they come. So a client is built once per class and configuration
without credentials, kept pickled, and each account's client is that template loaded again (a deep copy: no
state is shared between accounts) with the credentials set as the constructor sets them and an origin of its
own. A class whose clients do not pickle is constructed as usual. `tests/unit/test_client_template.py` compares
clients made both ways, attribute by attribute, for every supported exchange: a ccxt release that builds them
differently fails there, not in a trader's daemon.
"""

from __future__ import annotations

import copy
import pickle
import threading
from collections.abc import Mapping
from typing import Any

# ccxt constructor keys that carry an account's identity, never a server's address.
CREDENTIAL_KEYS = frozenset({"apiKey", "secret", "password", "uid", "privateKey", "walletAddress", "token"})

_templates: dict[tuple[type, str], bytes | None] = {}  # None: the class does not pickle, construct it
_lock = threading.Lock()  # clients are built in worker threads (`built_off_the_loop`)


def constructed(exchange_class: type, config: Mapping[str, Any]) -> Any:
    credentials = {key: value for key, value in config.items() if key in CREDENTIAL_KEYS}
    rest = {key: value for key, value in config.items() if key not in CREDENTIAL_KEYS}
    key = (exchange_class, repr(rest))
    with _lock:
        if key not in _templates:
            _templates[key] = _template(exchange_class, rest)
        template = _templates[key]
    if template is None:
        return exchange_class(dict(config))
    client = pickle.loads(template)
    for name, value in credentials.items():  # as the constructor sets a plain value
        setattr(client, name, value)
    client.origin = client.uuid()
    return client


def _template(exchange_class: type, config: dict[str, Any]) -> bytes | None:
    try:
        return pickle.dumps(exchange_class(copy.deepcopy(config)))
    except Exception:
        return None
