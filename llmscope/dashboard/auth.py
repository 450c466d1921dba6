"""The dashboard's login, once API keys exist: a ``read`` or ``admin`` key, then a signed cookie.

Until the first key is created the dashboard is open (like the collector's API). From then on
every page, every Dash callback and every export needs a session made by signing in with a
live key; a revoked key's session ends within ``CHECK_SECONDS``. Reading needs ``read``; what
spends (Try a fix starts paid calls with the dashboard's own collector key) asks
:meth:`Login.allows` for ``admin``. The cookie holds the key's name and scope, never the key,
and is signed with ``LLMSCOPE_DASHBOARD_SECRET_KEY`` (random per process when unset, which signs
everyone out on restart).
"""

from __future__ import annotations

import html
import secrets
import time
from urllib.parse import quote

from flask import Flask, Response, redirect, request, session
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.wrappers import Response as BaseResponse

from llmscope.db.models import ApiKey
from llmscope.keys import allows as scope_allows
from llmscope.keys import any_keys, verify_key

CHECK_SECONDS = 2.0
OPEN_PREFIXES = ("/login", "/logout", "/assets/", "/_favicon", "/favicon")


class Login:
    """Guards a Flask server (the Dash app's) with API-key sign-in."""

    def __init__(self, server: Flask, sessions: sessionmaker[Session], secret: str | None) -> None:
        self.sessions = sessions
        self._keys_exist = False
        self._checked_at = 0.0
        self._live: dict[str, float] = {}  # key name -> when it was last seen live
        server.secret_key = secret or secrets.token_hex(32)
        server.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
        server.before_request(self._guard)
        server.add_url_rule("/login", "login", self._login, methods=["GET", "POST"])
        server.add_url_rule("/logout", "logout", self._logout)

    def keys_exist(self) -> bool:
        now = time.monotonic()
        if not self._keys_exist and now - self._checked_at > CHECK_SECONDS:
            with self.sessions() as db:
                self._keys_exist = any_keys(db)
            self._checked_at = now
        return self._keys_exist

    def allows(self, needed: str) -> bool:
        """Whether this request's sign-in covers scope ``needed`` (any request does while no key
        exists, as on the collector). Callbacks that act for the user ask this on the server:
        the page a person sees is no guard."""
        if not self.keys_exist():
            return True
        scope = session.get("scope")
        return isinstance(scope, str) and scope_allows(scope, needed) and self._signed_in()

    def _signed_in(self) -> bool:
        name = session.get("key_name")
        if not name or session.get("scope") not in ("read", "admin"):
            return False
        now = time.monotonic()
        if now - self._live.get(name, 0.0) < CHECK_SECONDS:
            return True
        with self.sessions() as db:
            live = db.scalar(
                select(ApiKey.id).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
            )
        if live is None:
            session.clear()
            return False
        self._live[name] = now
        return True

    def _guard(self) -> BaseResponse | None:
        if request.path.startswith(OPEN_PREFIXES) or not self.keys_exist():
            return None
        if self._signed_in():
            return None
        if request.path.startswith("/_dash"):
            return Response('{"message": "sign in first"}', 401, mimetype="application/json")
        target = request.full_path.rstrip("?")
        return redirect(f"/login?next={quote(target)}")

    def _login(self) -> BaseResponse | str:
        target = _safe_next(request.values.get("next", "/"))
        error = ""
        if request.method == "POST":
            key = request.form.get("key", "").strip()
            with self.sessions() as db:
                scope = verify_key(db, key) if key else None
                name = (
                    db.scalar(select(ApiKey.name).where(ApiKey.prefix == _prefix(key)))
                    if scope
                    else None
                )
                db.commit()
            if scope in ("read", "admin") and name:
                session.clear()
                session["key_name"], session["scope"] = name, scope
                return redirect(target)
            error = (
                "This key may not read the dashboard (it needs the read or admin scope)."
                if scope
                else "That key is not valid (unknown or revoked)."
            )
        return _login_page(target, error)

    def _logout(self) -> BaseResponse:
        session.clear()
        return redirect("/login")


def _prefix(key: str) -> str:
    return key.removeprefix("lsk_").split("_", 1)[0]


def _safe_next(target: str) -> str:
    """Only a path on this site: no open redirect to another host."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_page(target: str, error: str) -> str:
    message = f'<p class="login-error" role="alert">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · llmscope</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ font-family: system-ui, sans-serif; background: #f5f6f8; display: grid;
        place-items: center; min-height: 100vh; margin: 0; color: #1f2430; }}
 form {{ background: #fff; padding: 2rem 2.25rem; border-radius: 10px; width: 24rem;
        box-shadow: 0 2px 12px rgba(0,0,0,.08); }}
 h1 {{ font-size: 1.25rem; margin: 0 0 .25rem; }}
 p {{ color: #555; font-size: .9rem; }}
 input {{ width: 100%; box-sizing: border-box; padding: .6rem; font: inherit;
         border: 1px solid #c9ced6; border-radius: 6px; margin: .5rem 0 1rem; }}
 button {{ background: #3559e0; color: #fff; border: 0; border-radius: 6px;
          padding: .6rem 1.2rem; font: inherit; cursor: pointer; }}
 .login-error {{ color: #b42318; }}
</style></head>
<body><form method="post" action="/login">
 <h1>◎ llmscope</h1>
 <p>This dashboard needs an API key with the <code>read</code> or <code>admin</code> scope
 (<code>llmscope keys create --name NAME --scope read</code>).</p>
 {message}
 <label for="key">API key</label>
 <input id="key" name="key" type="password" autocomplete="off" autofocus required>
 <input type="hidden" name="next" value="{html.escape(target)}">
 <button type="submit">Sign in</button>
</form></body></html>"""
