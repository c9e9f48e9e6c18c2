"""The designers' review web app (Starlette + Jinja2 templates in ``templates/review/``).

GET pages never change state. Every POST needs the session's CSRF token (form field
``csrf`` or header ``X-CSRF-Token``) and an Origin (or Referer) of this site, else 403.
Reviewers log in with their token (401 when wrong; 429 with Retry-After after too many
failures from one address) and get a signed session cookie (HttpOnly, SameSite=Strict). Ids in URLs are validated hex; renders are served by job key
only. Decisions answer JSON to the page's scripts (no reload) or redirect plain forms.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import socket
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
from starlette.applications import Starlette
from starlette.background import BackgroundTask, BackgroundTasks
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from plan.jobs import RenderJob
from qa.report import TEMPLATES as REPORT_TEMPLATES
from qa.report import Served, thumbnail_jpeg, upscale_warnings
from review.campaign_page import Publish, Publishing, ReportRefresher, manifest_rows, page_body
from review.auth import LoginThrottle, load_reviewers, reviewer_for, same_origin, token_fingerprint
from review.queue import (DECISIONS, MAX_NOTE_CHARS, PLACEMENT_REASONS, REASON_CODES, STATES, Conflict,
                          InvalidDecision, Item, ItemNotFound, ReviewError, ReviewQueue, check_item_id)
from settings import load_settings
from store import Store, open_store
from store.keys import exports_prefix, manifest_csv_key, manifest_key, preview_key, render_key

Rerender = Callable[[Sequence[RenderJob]], object]  # reroll jobs -> start the flow that renders them
JOB_KEY = re.compile(r"^[0-9a-f]{64}$")
SHA256 = JOB_KEY
EXPORT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
                "avif": "image/avif"}
CAMPAIGN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
VERDICTS = ("pass", "review", "fail")
SESSION_HOURS = 12
PAGE_SIZE = 60  # grid items per page
MAX_SEARCH_CHARS = 100
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def templates_dir() -> Path:
    return (load_settings().templates or Path(__file__).resolve().parents[1] / "templates") / "review"


class Forbidden(Exception):
    pass


class Unauthorized(Exception):
    pass


class _Review:
    """Request handlers over one queue and store."""

    def __init__(self, queue: ReviewQueue, store: Store, reviewers: Mapping[str, str],
                 publish: Publish | None, rerender: Rerender | None, throttle: LoginThrottle,
                 trusted_proxies: Sequence[str] = ()) -> None:
        self.queue, self.store, self.reviewers = queue, store, dict(reviewers)
        self.trusted_proxies = frozenset(trusted_proxies)
        self.publish, self.rerender, self.throttle = publish, rerender, throttle
        self.refresh = ReportRefresher(store, queue)
        self.publishing = Publishing(store, queue, publish) if publish is not None else None
        self.secret = queue.secret()
        self.assets = templates_dir()
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(self.assets), autoescape=True,
                                      undefined=jinja2.StrictUndefined)
        self.env.filters["dominant_colours"] = dominant_colours
        self.env.filters["size"] = file_size
        self._creatives: Any = None

    # -- helpers ---------------------------------------------------------------------------

    def logged_in(self, request: Request) -> str:
        name = self.reviewer(request)
        if name is None:
            raise Unauthorized("log in with your reviewer token first")
        return name

    def reviewer(self, request: Request) -> str | None:
        name = request.session.get("reviewer")
        token = self.reviewers.get(name) if isinstance(name, str) else None
        if token is None or request.session.get("fp") != token_fingerprint(self.secret, token):
            return None
        session = request.session.get("sid")
        if not isinstance(session, str) or self.queue.session_reviewer(session) != name:
            return None  # logged out (or expired) on the server: a kept copy of the cookie is dead
        return name

    def csrf(self, request: Request) -> str:
        if "csrf" not in request.session:
            request.session["csrf"] = secrets.token_urlsafe(32)
        return request.session["csrf"]

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        text = self.env.get_template(name).render(
            reviewer=self.reviewer(request), csrf=self.csrf(request), states=STATES, verdicts=VERDICTS,
            reasons=REASON_CODES, can_publish=self.publish is not None, **context)
        return HTMLResponse(text, status_code=status, headers=SECURITY_HEADERS)

    async def post_fields(self, request: Request) -> dict[str, Any]:
        """The POST's fields, after the Origin and CSRF checks (Forbidden when they fail)."""
        own = f"{request.url.scheme}://{request.url.netloc}"
        if not same_origin(request.headers.get("origin"), request.headers.get("referer"), own):
            raise Forbidden("cross-site request refused: Origin/Referer is not this site")
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                fields = await request.json()
            except ValueError:
                fields = None
            if not isinstance(fields, dict):
                raise Forbidden("request body must be a JSON object")
        else:
            fields = dict(await request.form())
        sent = request.headers.get("x-csrf-token") or fields.get("csrf") or ""
        expected = request.session.get("csrf")
        if not expected or not isinstance(sent, str) or not secrets.compare_digest(sent.encode(), expected.encode()):
            raise Forbidden("missing or wrong CSRF token: reload the page")
        return fields

    def campaign_or_404(self, campaign: str) -> str:
        if not CAMPAIGN.match(campaign) or campaign not in self.queue.campaigns():
            raise ItemNotFound(f"no campaign {campaign!r} in the review queue")
        return campaign

    # -- pages -----------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        try:
            self.queue.campaigns()
        except Exception as exc:  # noqa: BLE001 (any database failure is "unhealthy")
            return JSONResponse({"status": "error", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    async def login_page(self, request: Request) -> Response:
        return self.page(request, "login.html", next=_local(request.query_params.get("next")), error=None)

    async def login(self, request: Request) -> Response:
        fields = await self.post_fields(request)
        target = _local(fields.get("next"))
        client = client_address(request, self.trusted_proxies)
        wait = self.throttle.retry_after(client)
        if wait:
            response = self.page(request, "login.html", status=429, next=target,
                                 error=f"Too many failed logins from your address: try again in {wait} s.")
            response.headers["Retry-After"] = str(wait)
            return response
        token = fields.get("token")
        name = reviewer_for(token, self.reviewers) if isinstance(token, str) and token else None
        if name is None:
            self.throttle.failed(client)
            return self.page(request, "login.html", status=401, next=target, error="Unknown token.")
        self.throttle.succeeded(client)
        request.session.clear()
        request.session.update(reviewer=name, fp=token_fingerprint(self.secret, self.reviewers[name]),
                               csrf=secrets.token_urlsafe(32), sid=self.queue.open_session(name, SESSION_HOURS))
        return RedirectResponse(target, status_code=303)

    async def logout(self, request: Request) -> Response:
        await self.post_fields(request)
        if isinstance(request.session.get("sid"), str):
            self.queue.end_session(request.session["sid"])
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    async def campaigns(self, request: Request) -> Response:
        return self.page(request, "campaigns.html", campaigns=self.queue.campaigns())

    async def grid(self, request: Request) -> Response:
        campaign = self.campaign_or_404(request.path_params["campaign"])
        state = request.query_params.get("state")  # the queue unless asked for "all" or another state
        verdict = request.query_params.get("verdict") or None
        state = None if state == "all" else state if state in STATES else "queued"
        verdict = verdict if verdict in VERDICTS else None
        search = request.query_params.get("q", "").strip()[:MAX_SEARCH_CHARS] or None
        total = self.queue.count_items(campaign, state=state, verdict=verdict, search=search)
        pages = max(1, -(-total // PAGE_SIZE))
        try:
            page = min(max(1, int(request.query_params.get("page", "1"))), pages)
        except ValueError:
            page = 1
        items = self.queue.items(campaign, state=state, verdict=verdict, search=search, limit=PAGE_SIZE,
                                 offset=(page - 1) * PAGE_SIZE)
        return self.page(request, "grid.html", campaign=campaign, items=items, state=state, verdict=verdict,
                         counts=self.queue.campaigns()[campaign], search=search or "", total=total,
                         page_no=page, pages=pages, warnings=self.upscale_warnings(campaign))

    def upscale_warnings(self, campaign: str) -> list[str]:
        """Exported files of the campaign still enlarged above their style's max_upscale."""
        try:
            rows = json.loads(self.store.get(manifest_key(campaign)))
        except FileNotFoundError:
            return []  # nothing exported yet
        return upscale_warnings(rows if isinstance(rows, list) else [])

    async def detail(self, request: Request) -> Response:
        item = self.queue.item(request.path_params["item_id"])
        everything = self.queue.items(item.campaign)
        siblings = [i.id for i in everything]
        at = siblings.index(item.id)
        waiting = [i.id for i in everything[at + 1:] + everything[:at] if i.state == "queued"]
        return self.page(request, "detail.html", item=item, decisions=self.queue.decisions(item.id),
                         creative=self.creatives.of(item), placement_reasons=PLACEMENT_REASONS,
                         prev_id=siblings[at - 1] if at > 0 else None,
                         next_id=siblings[at + 1] if at + 1 < len(siblings) else None,
                         next_queued=waiting[0] if waiting else None)

    async def item_status(self, request: Request) -> Response:
        """What the item page polls during a reroll: its state, version and render job keys."""
        item = self.queue.item(check_item_id(request.path_params["item_id"]))
        return JSONResponse({**_summary(item), "job_keys": item.job_keys}, headers=SECURITY_HEADERS)

    async def render(self, request: Request) -> Response:
        key = request.path_params["job_key"]
        if not JOB_KEY.match(key) or not self.store.exists(render_key(key)):
            raise ItemNotFound(f"no render {key!r}")
        return Response(self.store.get(render_key(key)), media_type="image/png",
                        headers={**SECURITY_HEADERS, "Cache-Control": "private, max-age=86400, immutable"})

    async def asset(self, request: Request) -> Response:
        name = {"review.js": "text/javascript", "review.css": "text/css", "favicon.svg": "image/svg+xml",
                "creative.js": "text/javascript", "creative.css": "text/css", "report.css": "text/css"}
        filename = request.path_params["name"]
        if filename not in name:
            raise ItemNotFound(filename)
        folder = REPORT_TEMPLATES if filename == "report.css" else self.assets
        return FileResponse(folder / filename, media_type=name[filename], headers=SECURITY_HEADERS)

    # -- the campaign page -------------------------------------------------------------------

    async def campaign_report(self, request: Request) -> Response:
        """The live campaign page: the body of ``report.html``, its images served by this app."""
        campaign = self.campaign_or_404(request.path_params["campaign"])
        served = Served(export=lambda row: f"/c/{campaign}/thumb/{row.get('sha256', '')}.jpg",
                        render=lambda key: f"/render/{key}.png")
        body = page_body(self.store, self.queue, campaign, served)
        status = self.publishing.status(campaign) if self.publishing else None
        return self.page(request, "campaign_page.html", campaign=campaign, body=markupsafe.Markup(body),
                         publishing=status is not None and status.state == "running")

    def exported_row(self, campaign: str, match: Callable[[dict], bool]) -> dict:
        for row in manifest_rows(self.store, campaign):
            if row.get("status", "exported") == "exported" and match(row):
                return row
        raise ItemNotFound("no such exported file in the campaign's manifest")

    async def export_thumb(self, request: Request) -> Response:
        campaign = self.campaign_or_404(request.path_params["campaign"])
        sha = request.path_params["sha256"]
        if not SHA256.match(sha):
            raise ItemNotFound(f"no export {sha!r}")
        row = self.exported_row(campaign, lambda r: r.get("sha256") == sha)
        data = thumbnail_jpeg(self.store, str(row["path"]))
        if data is None:
            raise ItemNotFound(f"{row['path']} cannot be read")
        return Response(data, media_type="image/jpeg",
                        headers={**SECURITY_HEADERS, "Cache-Control": "private, max-age=86400, immutable"})

    async def campaign_file(self, request: Request) -> Response:
        """A file the campaign page links to, by its path under the campaign (the report's relative
        links): the manifests, or a file the manifest lists as exported. Nothing else is served."""
        campaign = self.campaign_or_404(request.path_params["campaign"])
        key = request.url.path.removeprefix("/c/")
        if key in (manifest_key(campaign), manifest_csv_key(campaign)):
            if not self.store.exists(key):
                raise ItemNotFound(f"{campaign} has no manifest yet: nothing exported")
            kind = "text/csv" if key == manifest_csv_key(campaign) else "application/json"
        else:
            self.exported_row(campaign, lambda r: r.get("path") == key)
            kind = EXPORT_TYPES.get(key.rpartition(".")[2].lower(), "application/octet-stream")
        return Response(self.store.get(key), media_type=kind, headers=SECURITY_HEADERS)

    async def publish_status(self, request: Request) -> Response:
        """The latest publish of the campaign (``store.documents.PublishRecord``), null before the first."""
        campaign = self.campaign_or_404(request.path_params["campaign"])
        status = self.publishing.status(campaign) if self.publishing else None
        return JSONResponse(status.model_dump() if status else None, headers=SECURITY_HEADERS)

    # -- the creative as it ships (placement previews, per-placement decisions, copy edits) ----

    @property
    def creatives(self) -> Any:
        """The export code's view of items (``exports.creative``), made on first use: the app
        shows what exports will make, so it is the one part of review that calls into exports."""
        if self._creatives is None:
            self._creatives = _Creatives(self.store)
        return self._creatives

    async def preview(self, request: Request) -> Response:
        digest = request.path_params["digest"]
        if not JOB_KEY.match(digest) or not self.store.exists(preview_key(digest)):
            raise ItemNotFound(f"no preview {digest!r}")
        return Response(self.store.get(preview_key(digest)), media_type="image/png",
                        headers={**SECURITY_HEADERS, "Cache-Control": "private, max-age=86400, immutable"})

    async def hero(self, request: Request) -> Response:
        """The item's hero placement as it ships (its first render when nothing can be drawn)."""
        item = self.queue.item(request.path_params["item_id"])
        preview = self.creatives.hero(item)
        if preview is None:
            first = sorted(item.jobs.items())[0][1]
            return RedirectResponse(f"/render/{first.key}.png", status_code=303)
        return Response(self.store.get(preview_key(preview.digest)), media_type="image/png",
                        headers=SECURITY_HEADERS)

    async def placement_decision(self, request: Request) -> Response:
        """Reject one placement of the creative (with a reason) or restore it."""
        item_id = check_item_id(request.path_params["item_id"])
        fields = await self.post_fields(request)
        reviewer = self.logged_in(request)
        item = self.queue.item(item_id)
        placement, action = fields.get("placement"), fields.get("action")
        known = self.creatives.placements_of(item)
        if placement not in known:
            raise InvalidDecision(f"placement {placement!r} is not one of this creative's placements: "
                                  f"{', '.join(known) or 'none (no campaign run recorded them)'}")
        version = _version(fields.get("version"))
        if action == "reject":
            item = self.queue.reject_placement(item_id, reviewer, placement, fields.get("reason"),
                                               fields.get("note") or None, expected_version=version)
        elif action == "restore":
            item = self.queue.restore_placement(item_id, reviewer, placement, expected_version=version)
        else:
            raise InvalidDecision(f"action must be reject or restore but is {action!r}")
        task = BackgroundTask(self.refresh, item.campaign)  # the campaign page shows what ships
        if _wants_json(request):
            return JSONResponse(_summary(item) | {"rejected_placements": dict(item.rejected_placements)},
                                background=task)
        return RedirectResponse(f"/i/{item_id}", status_code=303, background=task)

    async def copy_edit(self, request: Request) -> Response:
        """Override the headline, CTA or alt text of the item, once it passes the sheet's checks."""
        item_id = check_item_id(request.path_params["item_id"])
        fields = await self.post_fields(request)
        reviewer = self.logged_in(request)
        item = self.queue.item(item_id)
        name, value = fields.get("field"), fields.get("value")
        if not isinstance(value, str):
            raise InvalidDecision(f"value must be text but is {value!r}")
        version = _version(fields.get("version"))
        problems, before = self.creatives.copy_problems(item, name, value)
        if problems:
            return JSONResponse({"error": "; ".join(problems), "problems": problems}, status_code=400,
                                headers=SECURITY_HEADERS)
        item = self.queue.edit_copy(item_id, reviewer, name, before, value, expected_version=version)
        task = BackgroundTask(self.refresh, item.campaign)
        if _wants_json(request):
            return JSONResponse(_summary(item) | {"overrides": dict(item.overrides)}, background=task)
        return RedirectResponse(f"/i/{item_id}", status_code=303, background=task)

    # -- actions ---------------------------------------------------------------------------

    async def decide(self, request: Request) -> Response:
        item_id = check_item_id(request.path_params["item_id"])
        fields = await self.post_fields(request)
        decision = fields.get("decision")
        if decision not in DECISIONS:
            raise InvalidDecision(f"decision must be one of {', '.join(DECISIONS)} but is {decision!r}")
        version = _version(fields.get("version"))
        reason = fields.get("reason") or None
        note = fields.get("note") or None
        reviewer = self.logged_in(request)
        task = BackgroundTasks()
        if decision == "reroll":
            jobs = self.queue.reroll(item_id, reviewer, expected_version=version, reason=reason, note=note)
            if self.rerender is not None:
                task.add_task(self.rerender, jobs)
        else:
            self.queue.decide(item_id, reviewer, decision, reason, note, expected_version=version)
        item = self.queue.item(item_id)
        task.add_task(self.refresh, item.campaign)  # the campaign page shows the decision
        if _wants_json(request):
            return JSONResponse(_summary(item), background=task)
        return RedirectResponse(f"/i/{item_id}", status_code=303, background=task)

    async def bulk_approve(self, request: Request) -> Response:
        campaign = self.campaign_or_404(request.path_params["campaign"])
        fields = await self.post_fields(request)
        reviewer = self.logged_in(request)
        wanted = fields.get("items")  # {"id": version, ...} (JSON) or "id:version,..." (form)
        if isinstance(wanted, str):
            wanted = dict(part.split(":", 1) for part in wanted.split(",") if ":" in part)
        if not isinstance(wanted, dict):
            raise InvalidDecision("items must map item id -> version")
        done, conflicts = [], []
        for item_id, version in wanted.items():
            item = self.queue.item(item_id)
            if item.campaign != campaign:
                raise ItemNotFound(f"item {item_id} is not in campaign {campaign}")
            try:
                done.append(_summary(self.queue.decide(item_id, reviewer, "approve", expected_version=_version(version))))
            except Conflict as exc:
                conflicts.append({"id": item_id, "error": str(exc)})
        task = BackgroundTask(self.refresh, campaign)  # the campaign page shows the approvals
        if _wants_json(request):
            return JSONResponse({"approved": done, "conflicts": conflicts}, status_code=409 if conflicts else 200,
                                background=task)
        return RedirectResponse(f"/c/{campaign}", status_code=303, background=task)

    async def publish_approved(self, request: Request) -> Response:
        campaign = self.campaign_or_404(request.path_params["campaign"])
        fields = await self.post_fields(request)
        if self.publishing is None:
            raise ItemNotFound("publishing is not enabled on this server")
        note = fields.get("note") or ""
        if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
            raise InvalidDecision(f"note must be text of at most {MAX_NOTE_CHARS} characters")
        approved = len(self.queue.approved(campaign))
        running = self.publishing.start(campaign, self.logged_in(request), note)
        if running is not None:
            raise Conflict(f"a publish of {campaign} by {running.by} (started {running.started}) is still running: "
                           f"its result shows on /c/{campaign}/report")
        if _wants_json(request):
            return JSONResponse({"campaign": campaign, "approved": approved, "started": True,
                                 "status": f"/c/{campaign}/publish/status", "page": f"/c/{campaign}/report"},
                                status_code=202)
        return RedirectResponse(f"/c/{campaign}/report", status_code=303)


class _Creatives:
    """Items as the export code sees them, for the pages: previews, hero, placements, copy checks."""

    def __init__(self, store: Store) -> None:
        from exports.assemble import resolve_paths
        from exports.placements import load_placements

        paths = resolve_paths()
        self.store, self.placements = store, load_placements(paths.placements_file)
        self.styles = paths.styles

    def of(self, item: Item) -> Any:
        from exports.creative import creative_of

        return creative_of(item, self.store, self.placements)

    def hero(self, item: Item) -> Any:
        from exports.creative import hero_preview

        return hero_preview(item, self.store, self.placements)

    def placements_of(self, item: Item) -> list[str]:
        from exports.creative import placements_of

        return placements_of(item, self.store)

    def copy_problems(self, item: Item, name: object, value: str) -> tuple[list[str], str]:
        """(problems of ``value`` as the item's ``name``, the text it ships with now); the banned
        terms are read at each edit: a term the brand bans while the server runs is refused at once."""
        from exports.assemble import banned_checker
        from exports.creative import copy_edit_problems, creative_of

        creative = creative_of(item, self.store, {})  # no previews needed: the copy and the fonts
        problems = copy_edit_problems(item, str(name), value, banned_checker(self.styles), creative.export)
        if creative.export is None and not problems:
            problems = [f"{name} cannot be edited: {creative.problem}"]
        return problems, creative.shipped.get(str(name), "")


def file_size(size: int | None) -> str:
    """Bytes as people read them: 812 B, 48.2 KB, 3.1 MB."""
    if size is None:
        return "no cap"
    if size < 1024:
        return f"{size} B"
    return f"{size / 1024:.1f} KB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MB"


DOMINANT = re.compile(r"^(#[0-9A-Fa-f]{6}) (\d{1,3})% dE ([0-9.]+) to (#[0-9A-Fa-f]{6})$")


def dominant_colours(text: str) -> list[dict[str, str]]:
    """The palette check's ``dominant_colours`` detail ('#839099 33% dE 27.7 to #F5F1E8; ...')
    as rows to draw: the render's colour, its share, CIEDE2000 and the nearest brand colour.
    Parts in another form are left out (the raw text stays on the page)."""
    rows = []
    for part in text.split(";"):
        found = DOMINANT.match(part.strip())
        if found:
            colour, share, delta, brand = found.groups()
            rows.append({"colour": colour.upper(), "share": share, "delta_e": delta, "brand": brand.upper()})
    return rows


def client_address(request: Request, trusted_proxies: Collection[str] = ()) -> str:
    """The address login throttling counts failures against: the TCP peer. Only when the peer is
    one of ``trusted_proxies`` is its ``X-Forwarded-For`` read, from the right: the nearest
    address that is not a trusted proxy (what a client puts further left is its own claim).
    Nothing else in the request (headers, cookies, form fields) can change or spread it."""
    peer = request.client.host if request.client else "unknown"
    if peer not in trusted_proxies:
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted_proxies:
            return hop
    return peer


def _version(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise InvalidDecision(f"version must be the item's version number but is {value!r}") from None


def _local(target: object) -> str:
    """A same-site path to go to after login ('/' when not one)."""
    if isinstance(target, str) and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _summary(item: Item) -> dict[str, Any]:
    return {"id": item.id, "state": item.state, "version": item.version, "approved_by": item.approved_by,
            "approval_id": item.approval_id, "reroll": item.reroll}


def _error(request: Request, status: int, message: str) -> Response:
    if _wants_json(request) or request.method == "POST":
        return JSONResponse({"error": message}, status_code=status, headers=SECURITY_HEADERS)
    return HTMLResponse(f"<!doctype html><title>{status}</title><p>{html.escape(message)}</p>",
                        status_code=status, headers=SECURITY_HEADERS)


def create_app(out: str, *, reviewers: Mapping[str, str] | None = None, store: Store | None = None,
               publish: Publish | None = None, rerender: Rerender | None = None,
               allowed_hosts: Sequence[str] = ("127.0.0.1", "localhost"),
               login_throttle: LoginThrottle | None = None, trusted_proxies: Sequence[str] = ()) -> Starlette:
    """The review app for the queue of ``out`` (see ``review.queue.database_url``).

    ``reviewers``: name -> token (default: :func:`review.auth.load_reviewers`).
    ``publish``: called in a background thread (``review.campaign_page.Publishing``) with
    (campaign, reviewer, note) to resume the runs waiting for that campaign's review (returning
    their ids), or else export its approved items; its progress and result are in the campaign's
    ``publish.json``, polled by the campaign page. None hides the button.
    ``rerender``: called (after the response) with a reroll's jobs, to start the campaign flow
    that renders, checks and re-queues them (``flows.reroll.Reroller``); the app never renders.
    None leaves them to the campaign's next run.
    ``allowed_hosts``: Host headers served (guards against DNS rebinding).
    ``login_throttle``: failed logins allowed per client address (default 5 a minute).
    ``trusted_proxies``: addresses of reverse proxies whose ``X-Forwarded-For`` names the client
    (:func:`client_address`); none by default, so no request header is believed.
    """
    queue = ReviewQueue.for_out(out)
    queue.verify()  # a queue that lost decisions is not served (ReviewStateLost names the recovery)
    review = _Review(queue, store or open_store(out), load_reviewers() if reviewers is None else reviewers,
                     publish, rerender, login_throttle or LoginThrottle(), trusted_proxies)
    public = {"/healthz", "/login", "/assets/review.css", "/assets/review.js", "/assets/favicon.svg",
              "/assets/creative.css", "/assets/creative.js", "/assets/report.css"}

    async def guard(request: Request, call_next: Callable) -> Response:
        if request.url.path not in public and review.reviewer(request) is None:
            if request.method == "GET" and not _wants_json(request):
                return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
            return _error(request, 401, "log in with your reviewer token first")
        return await call_next(request)

    def handler(status: int, fixed: str | None = None) -> Callable[[Request, Exception], Response]:
        return lambda request, exc: _error(request, status, fixed or str(exc))

    routes = [
        Route("/healthz", review.healthz),
        Route("/login", review.login_page, methods=["GET"]),
        Route("/login", review.login, methods=["POST"]),
        Route("/logout", review.logout, methods=["POST"]),
        Route("/", review.campaigns),
        Route("/c/{campaign}", review.grid),
        Route("/c/{campaign}/approve", review.bulk_approve, methods=["POST"]),
        Route("/c/{campaign}/publish", review.publish_approved, methods=["POST"]),
        Route("/c/{campaign}/publish/status", review.publish_status),
        Route("/c/{campaign}/report", review.campaign_report),
        Route("/c/{campaign}/thumb/{sha256}.jpg", review.export_thumb),
        # the campaign page's relative links: /c/ + the store key (manifests, exported files)
        *(Route(f"/c/{key}", review.campaign_file)
          for key in (manifest_key("{campaign}"), manifest_csv_key("{campaign}"),
                      exports_prefix("{campaign}") + "/{path:path}")),
        Route("/i/{item_id}", review.detail),
        Route("/i/{item_id}/decide", review.decide, methods=["POST"]),
        Route("/i/{item_id}/status", review.item_status),
        Route("/render/{job_key}.png", review.render),
        Route("/preview/{digest}.png", review.preview),
        Route("/i/{item_id}/hero.png", review.hero),
        Route("/i/{item_id}/placement", review.placement_decision, methods=["POST"]),
        Route("/i/{item_id}/copy", review.copy_edit, methods=["POST"]),
        Route("/assets/{name}", review.asset),
    ]
    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)),
        Middleware(SessionMiddleware, secret_key=review.secret, session_cookie="brandbatch_review",
                   max_age=SESSION_HOURS * 3600, same_site="strict"),
        Middleware(BaseHTTPMiddleware, dispatch=guard),
    ]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={Unauthorized: handler(401), Forbidden: handler(403), ItemNotFound: handler(404), Conflict: handler(409),
                                        InvalidDecision: handler(400), 404: handler(404, "not found"),
                                        405: handler(405, "method not allowed")})
    app.state.queue = queue
    app.state.publishing = review.publishing  # tests wait on it
    return app


def trusted_proxies_from_env() -> tuple[str, ...]:
    """``$BRANDBATCH_TRUSTED_PROXIES``: comma list of reverse-proxy addresses (none by default)."""
    return tuple(p.strip() for p in (load_settings().trusted_proxies or "").split(",") if p.strip())


def server_config(app: Starlette, host: str, port: int) -> Any:
    """uvicorn's configuration: its own proxy-header handling off (it would believe
    ``X-Forwarded-For`` from any local client); the app reads it from trusted proxies only."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level="info", proxy_headers=False,
                          server_header=False)


def listen(out: str, host: str, port: int) -> socket.socket:
    """The review app's listening socket, or a one-line ReviewError: a local ``out`` that is not
    a folder (nothing has run there, so the queue would only look empty) or a port already taken."""
    if not out.startswith("s3://") and not Path(out).is_dir():
        raise ReviewError(f"--out {out}: no such folder, so there is no review queue to serve; run "
                          f"`brandbatch run SHEET --out {out}` first, or pass the --out that run used")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ReviewError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (another server there? "
                          f"pick a free one with --port)") from None


def open_url(host: str, port: int) -> str:
    """The address to open in a browser for a server bound to ``host``."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{f'[{shown}]' if ':' in shown else shown}:{port}/"


def serve(out: str, sock: socket.socket, *, publish: Publish | None = None, rerender: Rerender | None = None,
          ready: Callable[[], object] | None = None) -> None:
    """Run the review app with uvicorn on ``sock`` (from :func:`listen`). ``publish`` and
    ``rerender`` as for :func:`create_app` (the command line starts the campaign flow for a
    reroll: ``flows.reroll``; the app itself never renders). ``ready`` is called once the app
    could be built (queue readable, reviewers configured), before serving."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    store = open_store(out)
    hosts = ["127.0.0.1", "localhost"] + ([host] if host not in ("0.0.0.0", "::") else [])
    app = create_app(out, store=store, publish=publish, rerender=rerender,
                     allowed_hosts=hosts, trusted_proxies=trusted_proxies_from_env())
    if ready:
        ready()
    uvicorn.Server(server_config(app, host, port)).run(sockets=[sock])
