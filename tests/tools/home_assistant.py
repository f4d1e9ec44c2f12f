"""Starts a real Home Assistant for the tests, already onboarded, with its
MQTT integration pointed at the test broker (discovery on) and a
long-lived access token for the REST API written to DIR/token.

usage: home_assistant.py DIR MQTT_PORT HTTP_PORT   (then it is `hass`)
"""

import json
import os
import secrets
import sys
import time

import jwt


def write(path, data):
    with open(path, "w") as f:
        json.dump(data, f)


def main():
    root, mqtt_port, http_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    storage = os.path.join(root, ".storage")
    os.makedirs(storage, exist_ok=True)
    with open(os.path.join(root, "configuration.yaml"), "w") as f:
        f.write(
            "homeassistant:\n  name: drsnd-test\n  unit_system: metric\n  time_zone: UTC\n"
            "  latitude: 0\n  longitude: 0\n  elevation: 0\n  currency: EUR\n  country: DE\n"
            f"http:\n  server_host: 127.0.0.1\n  server_port: {http_port}\napi:\n"
        )
    jwt_key, token_id = secrets.token_hex(64), secrets.token_hex(16)
    groups = [
        {"id": "system-admin", "name": "Administrators"},
        {"id": "system-users", "name": "Users"},
        {"id": "system-read-only", "name": "Read Only"},
    ]
    user = {
        "id": "drsnd-test",
        "group_ids": ["system-admin"],
        "is_owner": True,
        "is_active": True,
        "name": "drsnd test",
        "system_generated": False,
        "local_only": False,
    }
    refresh = {
        "id": token_id,
        "user_id": user["id"],
        "client_id": None,
        "client_name": "drsnd test",
        "client_icon": None,
        "token_type": "long_lived_access_token",
        "created_at": "2024-01-01T00:00:00+00:00",
        "access_token_expiration": 315360000.0,
        "token": secrets.token_hex(64),
        "jwt_key": jwt_key,
        "last_used_at": None,
        "last_used_ip": None,
        "credential_id": None,
        "version": "2024.3.3",
    }
    write(os.path.join(storage, "auth"), {
        "version": 1, "minor_version": 1, "key": "auth",
        "data": {"users": [user], "groups": groups, "credentials": [], "refresh_tokens": [refresh]},
    })
    write(os.path.join(storage, "onboarding"), {
        "version": 4, "minor_version": 1, "key": "onboarding",
        "data": {"done": ["user", "core_config", "analytics", "integration"]},
    })
    entry = {
        "entry_id": "drsnd-test-mqtt",
        "version": 1,
        "minor_version": 1,
        "domain": "mqtt",
        "title": "test broker",
        "data": {"broker": "127.0.0.1", "port": mqtt_port, "discovery": True,
                 "discovery_prefix": "homeassistant"},
        "options": {},
        "pref_disable_new_entities": False,
        "pref_disable_polling": False,
        "source": "user",
        "unique_id": None,
        "disabled_by": None,
    }
    write(os.path.join(storage, "core.config_entries"), {
        "version": 1, "minor_version": 1, "key": "core.config_entries",
        "data": {"entries": [entry]},
    })
    now = int(time.time())
    token = jwt.encode({"iss": token_id, "iat": now, "exp": now + 10**8}, jwt_key, algorithm="HS256")
    with open(os.path.join(root, "token"), "w") as f:
        f.write(token)
    hass = os.path.join(os.path.dirname(sys.executable), "hass")
    os.execv(hass, [hass, "-c", root, "--skip-pip"])


if __name__ == "__main__":
    main()
