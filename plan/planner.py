"""Sheet + styles -> validated rows and render jobs. Bad rows are reported, good rows planned."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import repeat
from pathlib import Path
from typing import NamedTuple

from jinja2 import Template

from plan.collector import cycle_collector_paused
from plan.errors import InputError, Problem, did_you_mean
from plan.jobs import JobMaker, RenderJob, derive_expand_seed, derive_seed, job_from_values
from plan.names import name_problem
from plan.prompts import PromptError, find_banned_terms, may_contain_banned_terms, prompt_template, render_template
from plan.resolution import bucket, expand_size, nearest_aspect
from plan.sheet import MAX_CELL_CHARS, RESERVED_COLUMNS, Sheet
from plan.styles import (LOGO_SUFFIXES, TINY_CONTROLNET, TINY_IP_ADAPTER, TINY_ADAPTER_REVISION, Style, StyleLibrary,
                         file_in_folder, parse_style_ref)
from plan.tokens import MAX_TOKENS, count_tokens
from plan.uploads import RENDER_INPUT_COLUMNS, UPLOAD_COLUMNS, BlockedMarkError, Upload, UploadError, check_upload
from store.keys import export_name

MAX_VARIANTS = 8
_LIST_SPLIT = re.compile(r"[,;|\s]+")
# A BCP 47 tag as sheets write it: language, optional script, region and variants (overlay text).
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?(-([A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*$")


@dataclass(frozen=True)
class PlannedRow:
    """A valid sheet row: what to render for it and what to export."""

    row: int
    asset_id: str
    style: Style
    variants: int
    placements: tuple[str, ...]
    aspects: tuple[str, ...]
    prompt: str
    cells: Mapping[str, str]
    uploads: Mapping[str, Upload] = field(default_factory=dict)  # column -> checked image (plan.uploads)

    @property
    def alt_text(self) -> str:
        return self.cells.get("alt_text") or self.prompt


@dataclass
class CampaignPlan:
    campaign: str
    sheet: Path
    rows: list[PlannedRow] = field(default_factory=list)
    jobs: list[RenderJob] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def styles(self) -> dict[str, Style]:
        """The style versions the plan's rows use, by ref (``name@version``)."""
        return {row.style.ref: row.style for row in self.rows}


@dataclass(frozen=True)
class PlanSettings:
    styles_dir: Path
    templates_dir: Path
    placements: Mapping[str, tuple[int, int]]  # placement id -> (width, height)
    allow_draft: bool = False
    model_override: str | None = None  # "ID" or "ID@REVISION" (--model), replaces every style's model
    # Why a style's model is not pinned ('' if it is); approved styles must pin (render/ knows how).
    model_pin_problem: Callable[[str, str | None], str] | None = None
    # The family (sd, sdxl, sd3, flux) of a model id + revision, None when unknown (render/ knows how).
    model_family: Callable[[str, str | None], str | None] | None = None
    today: dt.date = field(default_factory=dt.date.today)


def load_banned_terms(path: Path) -> tuple[str, ...]:
    """One term per line; '#' starts a comment. Read again only when the file changes."""
    try:
        stat = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return ()
    return _read_banned_terms(str(path), stat.st_mtime_ns, stat.st_size) if path.is_file() else ()


@lru_cache(maxsize=256)
def _read_banned_terms(path: str, _mtime_ns: int, _size: int) -> tuple[str, ...]:
    lines = (line.split("#", 1)[0].strip() for line in Path(path).read_text(encoding="utf-8").splitlines())
    return tuple(line for line in lines if line)


class _RowProblems(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems


def _style_for(cell: str, library: StyleLibrary, settings: PlanSettings, where: str, row: int) -> Style:
    def fail(code: str, message: str) -> _RowProblems:
        return _RowProblems([Problem(where, message, row, "style", code=code)])

    if not cell:
        raise fail("empty_value", "required value is empty (expected name@version, e.g. acme@2)")
    try:
        name, version = parse_style_ref(cell)
    except ValueError as exc:
        raise fail("bad_style_ref", str(exc)) from None
    versions = library.versions(name)
    if not versions:
        raise fail("unknown_style", f"unknown style {name!r}; known styles: {', '.join(library.names()) or 'none'}")
    if version not in versions:
        raise fail("unknown_style_version",
                   f"style {name!r} has no version {version}; versions: {', '.join(map(str, versions))}")
    try:
        style = library.get(name, version)
    except InputError as exc:
        raise _RowProblems([Problem(where, f"style {cell} is invalid: {p}", row, "style",
                                    code="invalid_style") for p in exc.problems]) from None
    if style.status == "approved" and settings.model_pin_problem and not settings.model_override:
        for key, model in (("model", style.model), ("expand_model", style.expand_model)):
            unpinned = model and settings.model_pin_problem(model.id, model.revision)
            if unpinned:
                raise fail("unpinned_model", f"approved style {cell} ({library.path(name, version)}) names an "
                                             f"unpinned {key}: {unpinned}")
    if settings.model_override and settings.model_family:
        model_id, _, revision = settings.model_override.partition("@")
        family = settings.model_family(model_id, revision or None)
        if family and family != style.model.family:
            raise fail("model_family_mismatch",
                       f"--model {settings.model_override} is a model of family {family} but style {cell} is "
                       f"made for family {style.model.family} (its sizes, scheduler and prompts); give a model of "
                       f"family {style.model.family}, or a style version made for {family}")
    if style.status == "draft" and not settings.allow_draft:
        raise fail("draft_style", f"style {cell} is a draft; production runs need an approved style (or --allow-draft)")
    if style.status == "deprecated" and style.deprecated_on and style.deprecated_on <= settings.today:
        raise fail("deprecated_style", f"style {cell} was deprecated on {style.deprecated_on}; "
                                       f"{_newest_approved(library, name, versions)}")
    return style


def _newest_approved(library: StyleLibrary, name: str, versions: Sequence[int]) -> str:
    """What to use instead of a deprecated version: the newest approved one (a newer draft would
    be refused in turn)."""
    for version in sorted(versions, reverse=True):
        try:
            style = library.get(name, version)
        except InputError:
            continue
        if style.status == "approved":
            return f"use {style.ref} (the newest approved version)"
    return f"style {name!r} has no approved version; ask its owner for one"


def shipped_text_problems(texts: Mapping[str, str], banned: Sequence[str]) -> list[str]:
    """``column: banned term 'x'`` for each text that would ship with a banned term in it."""
    return [f"{column}: banned term {', '.join(map(repr, hits))}"
            for column, text in texts.items() if text and (hits := find_banned_terms(text, banned))]


def banned_terms_for(styles_dir: Path, style: str, version: int, known: Style | None = None) -> tuple[str, ...]:
    """The banned terms a text of ``style@version`` is checked against now (see ``_banned_terms``);
    ``known``: that style version as already read (this run's plan), else its file is read."""
    library = StyleLibrary(styles_dir)
    return _banned_terms(library, known or library.get(style, version))


def _banned_terms(library: StyleLibrary, style: Style) -> tuple[str, ...]:
    """Every brand's (styles/banned-terms.txt), this brand's, and this style version's banned terms."""
    return load_banned_terms(library.root / "banned-terms.txt") \
        + load_banned_terms(library.root / style.name / "banned-terms.txt") + style.banned_terms


class _StyleChecks(NamedTuple):
    """What each row of a style is checked against in one plan: the style's banned terms, and
    its prompt template or why it cannot be loaded (looked up once per style and plan)."""

    banned: tuple[str, ...]
    template: Template | PromptError


@dataclass
class _PlanMemo:
    """What the rows of one plan look up once: each style cell's style (cells naming a usable
    style), each style's checks, and the aspect ratios of each style and placements."""

    styles: dict[str, Style] = field(default_factory=dict)
    checks: dict[str, _StyleChecks] = field(default_factory=dict)
    aspects: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = field(default_factory=dict)


def _style_checks(library: StyleLibrary, style: Style, settings: PlanSettings) -> _StyleChecks:
    try:
        template: Template | PromptError = prompt_template(settings.templates_dir, style.prompt_template)
    except PromptError as exc:
        template = exc
    return _StyleChecks(_banned_terms(library, style), template)


@lru_cache(maxsize=1024)  # a sheet names a few placement lists
def _placement_list(cell: str) -> tuple[str, ...]:
    """A placements cell's ids, in order, each once."""
    return tuple(dict.fromkeys(p for p in _LIST_SPLIT.split(cell) if p))


@lru_cache(maxsize=8)
def _folder(sheet: str) -> Path:
    """The sheet's folder (asked once per row)."""
    return Path(sheet).parent


def _plan_row(cells: Mapping[str, str], row: int, library: StyleLibrary, settings: PlanSettings,
              where: str, memo: _PlanMemo) -> PlannedRow:
    problems: list[Problem] = []
    for column, value in cells.items() if max(map(len, cells.values()), default=0) > MAX_CELL_CHARS else ():
        if len(value) > MAX_CELL_CHARS:
            problems.append(Problem(where, f"value is {len(value)} characters; at most {MAX_CELL_CHARS}", row, column,
                                    code="cell_too_long"))
    asset_id = cells.get("asset_id", "")
    if not asset_id:
        problems.append(Problem(where, "required value is empty", row, "asset_id", code="empty_value"))
    elif problem := name_problem(asset_id):
        problems.append(Problem(where, problem, row, "asset_id", code="bad_asset_id"))
    style_cell = cells.get("style", "")
    style = memo.styles.get(style_cell)
    if style is None:
        try:
            style = memo.styles[style_cell] = _style_for(style_cell, library, settings, where, row)
        except _RowProblems as exc:
            problems.extend(exc.problems)

    variants = 1
    raw_variants = cells.get("variants", "")
    if raw_variants:
        try:
            variants = int(float(raw_variants)) if float(raw_variants).is_integer() else -1
        except ValueError:
            variants = -1
        if not 1 <= variants <= MAX_VARIANTS:
            problems.append(Problem(where, f"must be a whole number from 1 to {MAX_VARIANTS} but is {raw_variants!r}",
                                    row, "variants", code="bad_variants"))

    placements: tuple[str, ...] = ()
    raw_placements = cells.get("placements", "")
    if raw_placements:
        placements = _placement_list(raw_placements)
    elif style is not None:
        placements = style.placements
    for unknown in (p for p in placements if p not in settings.placements):
        problems.append(Problem(where, f"unknown placement {unknown!r}{did_you_mean(unknown, settings.placements)}; "
                                       "`brandbatch placements list` shows the ids", row, "placements",
                                code="unknown_placement"))
    locale = cells.get("locale", "")
    if locale and not _LOCALE.match(locale):
        problems.append(Problem(where, f"must be a BCP 47 language tag such as de, de-CH, ar-EG or zh-Hant-TW but is "
                                       f"{locale!r}", row, "locale", code="bad_locale"))
    logo = cells.get("logo", "")
    logo_problem = logo and file_in_folder(logo, LOGO_SUFFIXES, _folder(where))
    if logo_problem:
        problems.append(Problem(where, f"{logo_problem} (the sheet's folder) but is {logo!r}", row, "logo",
                                code="bad_logo"))
    uploads = _row_uploads(cells, style, library, _folder(where), where, row, problems) if style and (
        style.reference_image or any(map(cells.get, UPLOAD_COLUMNS))) else {}  # else none, and nothing to check
    if style is None or problems:
        raise _RowProblems(problems)

    # Empty cells are left undefined, so a template that uses one fails (StrictUndefined).
    variables = {k: v for k, v in cells.items() if k not in RESERVED_COLUMNS and v}
    variables["style_tokens"] = list(style.style_tokens)
    ref = style.ref
    if ref not in memo.checks:
        memo.checks[ref] = _style_checks(library, style, settings)
    banned, template = memo.checks[ref]
    prompt, error = "", template if isinstance(template, PromptError) else None
    if error is None:
        try:
            prompt = render_template(template, variables)
        except PromptError as exc:
            error = exc
    prompt_problem = None if error is None else Problem(where, str(error), row, error.column or "style",
                                                        code="bad_prompt")
    look = may_contain_banned_terms([*cells.values(), prompt], banned)  # most rows have none: one look at all
    for column, value in cells.items() if look else ():  # every column: any may reach an ad, a manifest, a platform
        hits = find_banned_terms(value, banned) if value else []
        if hits:
            problems.append(Problem(where, f"banned term {', '.join(map(repr, hits))} (style {ref})", row, column,
                                    code="banned_term"))
    if prompt_problem is not None:
        problems.append(prompt_problem)
        raise _RowProblems(problems)
    if look and not problems:
        hits = find_banned_terms(prompt, banned)
        if hits:
            problems.append(Problem(where, f"prompt contains banned term {', '.join(map(repr, hits))}", row, "prompt",
                                    code="banned_term"))
    n_tokens = count_tokens(prompt)
    if n_tokens > MAX_TOKENS:
        problems.append(Problem(where, f"prompt is {n_tokens} tokens; the text encoder reads at most {MAX_TOKENS} "
                                       "(shorten the row's text or the style tokens)", row, "prompt",
                                code="prompt_too_long"))
    if problems:
        raise _RowProblems(problems)
    aspects = memo.aspects.get((ref, placements))
    if aspects is None:
        aspects = memo.aspects[ref, placements] = _aspects(style, placements, settings)
    return PlannedRow(row=row, asset_id=asset_id, style=style, variants=variants, placements=placements,
                      aspects=aspects, prompt=prompt, cells=cells, uploads=uploads)


def _aspects(style: Style, placements: tuple[str, ...], settings: PlanSettings) -> tuple[str, ...]:
    """The aspect ratios rendered for ``placements`` in ``style``, in the style's order."""
    aspects = {nearest_aspect(*settings.placements[p], style.aspect_ratios) for p in placements}
    if style.composition == "expand":  # the master is rendered whichever aspects the placements need
        aspects.add(style.master_aspect)
    return tuple(sorted(aspects, key=style.aspect_ratios.index))


def _row_uploads(cells: Mapping[str, str], style: Style, library: StyleLibrary, folder: Path, where: str, row: int,
                 problems: list[Problem]) -> dict[str, Upload]:
    """The row's uploaded images, read, decoded and checked against the brand's blocked marks
    (``plan.uploads``); each one that fails adds its problem. A packshot needs alpha (or a
    ``product_mask`` of its size) and a style with a ``product`` placement."""
    uploads: dict[str, Upload] = {}
    for column in UPLOAD_COLUMNS:
        value = cells.get(column, "")
        if not value or any(p.column == column for p in problems):  # a bad logo path is reported already
            continue
        try:
            uploads[column] = check_upload(value, folder, column, library.root / style.name)
        except BlockedMarkError as exc:
            problems.append(Problem(where, str(exc), row, column, code="blocked_mark"))
        except UploadError as exc:
            problems.append(Problem(where, str(exc), row, column, code="bad_upload"))
    image, mask = uploads.get("product_image"), uploads.get("product_mask")
    if cells.get("product_mask") and not cells.get("product_image"):
        problems.append(Problem(where, "a product_mask needs the product_image it masks", row, "product_mask",
                                code="bad_product"))
    if cells.get("product_image") and style.product is None:
        problems.append(Problem(where, f"style {style.ref} has no 'product' placement (anchor, height); packshots "
                                       "need a style version that says where the product sits", row, "product_image",
                                code="bad_product"))
    if image is not None and mask is not None and mask.size != image.size:
        problems.append(Problem(where, f"product_mask is {mask.size[0]}x{mask.size[1]} but product_image "
                                       f"is {image.size[0]}x{image.size[1]}; they must match", row,
                                "product_mask", code="bad_product"))
    elif image is not None and not cells.get("product_mask"):
        low, high = image.alpha
        if low == 255 or high < 255:
            problems.append(Problem(where, f"{cells['product_image']} has {'no transparent' if low == 255 else 'no opaque'}"
                                           " pixels; a packshot needs an alpha channel that cuts out the product "
                                           "(or a product_mask)", row, "product_image", code="bad_product"))
    _reference(cells, style, library, uploads, where, row, problems)
    return uploads


def _reference(cells: Mapping[str, str], style: Style, library: StyleLibrary, uploads: dict[str, Upload], where: str,
               row: int, problems: list[Problem]) -> None:
    """The row's reference image: its ``reference_image`` cell (checked above), else the style's,
    checked the same way; the style must say how to use it. Packshot rows take none (their scene
    is inpainted around the product): the style's is left out, a row's own is refused."""
    def problem(message: str, code: str = "bad_reference") -> None:
        problems.append(Problem(where, message, row, "reference_image", code=code))

    if cells.get("reference_image") and cells.get("product_image"):
        problem("a packshot row (product_image) takes no reference image: its scene is painted around the product")
        return
    if style.reference_image and not cells.get("reference_image") and not cells.get("product_image"):
        brand = library.root / style.name
        try:
            stat = (brand / style.reference_image).stat()
            uploads["reference_image"] = _style_reference(str(brand), style.reference_image, stat.st_mtime_ns,
                                                          stat.st_size)
        except (UploadError, OSError) as exc:
            problem(f"style {style.ref}'s reference_image: {exc}",
                    "blocked_mark" if isinstance(exc, BlockedMarkError) else "bad_upload")
    if cells.get("reference_image") and style.reference_strength is None and style.ip_adapter is None and \
            style.structure is None:
        problem(f"style {style.ref} uses no reference image: it needs reference_strength (image-to-image), "
                "ip_adapter (style reference) or structure (ControlNet); use a style version that has one")


@lru_cache(maxsize=64)
def _style_reference(brand: str, value: str, _mtime_ns: int, _size: int) -> Upload:
    """A style's reference image, checked once per file version (every row of the style uses it)."""
    return check_upload(value, Path(brand), "reference_image", Path(brand))


def jobs_for_row(campaign: str, planned: PlannedRow, settings: PlanSettings,
                 rerolls: Mapping[int, int] | None = None, makers: dict[str, JobMaker] | None = None) -> list[RenderJob]:
    """One job per (variant, aspect); ``rerolls`` maps variant -> reroll count. A style with
    ``composition: expand`` gives per variant its master (at ``master_aspect``, first) and one
    expansion of it per other aspect. ``makers``: the job makers of the styles already seen in
    this plan (same campaign and settings), by style ref."""
    return _row_jobs(campaign, planned, settings, rerolls, makers, JobMaker.job)


def _row_jobs(campaign: str, planned: PlannedRow, settings: PlanSettings, rerolls: Mapping[int, int] | None,
              makers: dict[str, JobMaker] | None, make: Callable[..., RenderJob | tuple]) -> list:
    """``jobs_for_row``'s jobs as ``make`` makes them: ``JobMaker.job``, or ``JobMaker.values``
    (a worker sends these: no job made there)."""
    style, ref = planned.style, planned.style.ref
    makers = {} if makers is None else makers
    maker = makers.get(ref)
    if maker is None:
        maker = makers[ref] = _style_jobs(campaign, style, settings)
    family, resolution = style.model.family, style.model.resolution
    inputs = (tuple(sorted((column, upload.sha256) for column, upload in planned.uploads.items()
                           if column in RENDER_INPUT_COLUMNS)) or None) if planned.uploads else None
    own: dict[str, object] = {}  # what the row's masters and independent renders set beyond the style's maker
    if "reference_image" in planned.uploads:
        own.update(_references(style, settings.styles_dir / style.name, settings))
    packshot = "product_image" in planned.uploads and style.product is not None
    expand = style.composition == "expand"
    expand_model = _models(style, settings)[1] if packshot or expand else None
    if packshot:  # the scene is inpainted around the product, by the style's inpainting model if it names one
        own.update(zip(("model_id", "model_revision"), expand_model))
    row_jobs = maker.sharing(row_key=planned.asset_id, row=planned.row, prompt=planned.prompt, input_images=inputs)
    first = (style.master_aspect,) if expand else planned.aspects  # masters, or every render
    sizes = [(aspect, *bucket(aspect, family, resolution), {**own, "product": _product(style, aspect)} if packshot
              else own) for aspect in first]  # with what the row's masters and renders set

    jobs = []
    for variant in range(1, planned.variants + 1):
        reroll = rerolls.get(variant, 0) if rerolls else 0
        seed = derive_seed(campaign, planned.asset_id, variant, ref, reroll)
        for aspect, width, height, more in sizes:
            jobs.append(make(row_jobs, variant=variant, reroll=reroll, aspect=aspect, width=width, height=height,
                             seed=seed, **more))
        if not expand:
            continue
        master = jobs[-1] if make is JobMaker.job else job_from_values(jobs[-1])
        for aspect in planned.aspects:
            if aspect == style.master_aspect:
                continue
            width, height = expand_size((master.width, master.height), aspect, family, resolution)
            jobs.append(make(row_jobs, variant=variant, reroll=reroll, aspect=aspect, width=width, height=height,
                             model_id=expand_model[0], model_revision=expand_model[1],
                             seed=derive_expand_seed(master.key, aspect), master_key=master.key,
                             expand_focal=style.focal))
    return jobs


def _models(style: Style, settings: PlanSettings) -> tuple[tuple[str, str | None], tuple[str, str | None]]:
    """(id, revision) of the model that renders ``style``'s images, and of the one that inpaints
    (expansions, packshots): the style's, or the --model override for both."""
    if settings.model_override:
        model_id, _, revision = settings.model_override.partition("@")
        return (model_id, revision or None), (model_id, revision or None)
    expand_model = style.expand_model or style.model
    return (style.model.id, style.model.revision), (expand_model.id, expand_model.revision)


def _product(style: Style, aspect: str) -> tuple[float, float, float, bool]:
    """A packshot job's ``product``: where the style places the product at ``aspect``."""
    where = style.product.placement(aspect)
    return (*where.anchor, where.height, where.shadow)


def _style_jobs(campaign: str, style: Style, settings: PlanSettings) -> JobMaker:
    """A maker of the jobs of ``style``'s rows: the values every one of them has (the model:
    that of masters and independent renders)."""
    (model_id, revision), _ = _models(style, settings)
    # LoRA adapters and embeddings are made for the style's model: a --model override renders without them
    folder = settings.styles_dir / style.name
    adapters = None if settings.model_override or not style.adapters else tuple(
        (str(a.resolve(folder)), a.sha256, a.scale) for a in style.adapters)
    embeddings = None if settings.model_override or not style.embeddings else tuple(
        (str(e.resolve(folder)), e.sha256, e.token) for e in style.embeddings)
    return JobMaker(campaign=campaign, negative_prompt=style.negative_prompt, model_family=style.model.family,
                    scheduler=style.scheduler, steps=style.steps, guidance=style.guidance, style=style.name,
                    style_version=style.version, adapters=adapters, embeddings=embeddings, model_id=model_id,
                    model_revision=revision)


def _references(style: Style, folder: Path, settings: PlanSettings) -> dict[str, object]:
    """The job fields of a row with a reference image (masters and independent renders; expansions
    outpaint their master, which carries it). The IP-Adapter and ControlNet are made for the
    style's model: a --model override renders without them."""
    fields: dict[str, object] = {"reference_strength": style.reference_strength}
    ip = style.ip_adapter
    if ip is not None and not settings.model_override:
        tiny = ip.path.startswith(TINY_IP_ADAPTER)
        fields["ip_adapter"] = ((ip.path, TINY_ADAPTER_REVISION, ip.scale) if tiny
                                else (str(ip.resolve(folder)), ip.sha256, ip.scale))
    structure = style.structure
    if structure is not None and not settings.model_override:
        tiny = structure.controlnet.startswith(TINY_CONTROLNET)
        fields["controlnet"] = ((structure.controlnet, TINY_ADAPTER_REVISION, structure.scale) if tiny
                                else (str(structure.resolve(folder)), structure.sha256, structure.scale))
    return fields


def _claim_file_names(planned: PlannedRow, taken: dict[str, tuple[int, str]], where: str) -> None:
    """Export files are ``<asset_id>[-v<N>].<ext>``: refuse a row whose file names another row
    already uses, also when they differ only in letter case (case-insensitive file systems)."""
    stems = [export_name(planned.asset_id, v) for v in range(1, planned.variants + 1)]
    folded = list(map(str.casefold, stems))
    for stem, key in zip(stems, folded) if not taken.keys().isdisjoint(folded) else ():  # most rows clash with none
        if key in taken:
            row, other = taken[key]
            raise _RowProblems([Problem(where, f"export file name {stem!r} is already used by row {row} ({other!r}); "
                                               "asset ids must differ in more than letter case or a '-v<N>' "
                                               "variant suffix", planned.row, "asset_id", code="file_name_clash")])
    taken.update(zip(folded, zip(repeat(planned.row), stems)))


# Sheets of at least this many rows are planned over worker processes, in chunks of CHUNK_ROWS
# rows (a row is planned the same wherever it is: only duplicates and file names, checked here
# in sheet order, depend on other rows).
PARALLEL_ROWS = 20_000
CHUNK_ROWS = 1_000

RowOutcome = tuple[PlannedRow, list[RenderJob] | None] | list[Problem]


def plan_campaign(sheet: Sheet, settings: PlanSettings, limit: int | None = None, *,
                  workers: int | None = None) -> CampaignPlan:
    """Validate every row; plan the good ones. Problems are collected, never raised.

    ``workers``: processes that plan rows (None: one per core for sheets of ``PARALLEL_ROWS``
    rows or more, else this process only); the plan is the same whatever the count."""
    with cycle_collector_paused():
        return _plan_campaign(sheet, settings, limit, workers)


def _plan_campaign(sheet: Sheet, settings: PlanSettings, limit: int | None, workers: int | None) -> CampaignPlan:
    library = StyleLibrary(settings.styles_dir)
    plan = CampaignPlan(campaign=sheet.campaign, sheet=sheet.path)
    where = str(sheet.path)
    first_seen: dict[str, int] = {}
    earlier: list[Problem | tuple[Problem, ...] | int] = []  # per row: its duplicate or sheet problems, or its index
    to_plan: list[tuple[dict[str, str], int]] = []
    for sheet_row in sheet.rows:
        asset_id = sheet_row.cells.get("asset_id", "")
        if asset_id and asset_id in first_seen:
            earlier.append(Problem(where, f"duplicate asset_id {asset_id!r} (first on row {first_seen[asset_id]})",
                                   sheet_row.row, "asset_id", code="duplicate_asset_id"))
            continue
        if asset_id:
            first_seen[asset_id] = sheet_row.row
        if sheet_row.problems:
            earlier.append(sheet_row.problems)
            continue
        earlier.append(len(to_plan))
        to_plan.append((sheet_row.cells, sheet_row.row))
    file_names: dict[str, tuple[int, str]] = {}  # export file stem, casefolded -> (row, stem)
    makers: dict[str, JobMaker] = {}
    outcomes: list[RowOutcome] = []
    settled = 0  # the entries of ``earlier`` taken into the plan so far
    for chunk in _plan_rows(to_plan, library, settings, where, plan.campaign, workers):
        outcomes.extend(chunk)  # the next rows in sheet order: file names are claimed while later chunks are planned
        while settled < len(earlier) and not (isinstance(earlier[settled], int) and earlier[settled] >= len(outcomes)):
            entry = earlier[settled]
            settled += 1
            if isinstance(entry, Problem):
                plan.problems.append(entry)
                continue
            if isinstance(entry, tuple):
                plan.problems.extend(entry)
                continue
            outcome = outcomes[entry]
            if isinstance(outcome, list):
                plan.problems.extend(outcome)
                continue
            planned, jobs = outcome
            try:
                _claim_file_names(planned, file_names, where)
            except _RowProblems as exc:
                plan.problems.extend(exc.problems)
                continue
            if limit is not None and len(plan.rows) >= limit:
                continue
            plan.rows.append(planned)
            plan.jobs.extend(jobs if jobs is not None else jobs_for_row(plan.campaign, planned, settings,
                                                                                   makers=makers))
    return plan


def _plan_rows(rows: Sequence[tuple[dict[str, str], int]], library: StyleLibrary, settings: PlanSettings,
               where: str, campaign: str, workers: int | None) -> Iterator[list[RowOutcome]]:
    """Each row planned (with its jobs when planned in a worker) or its problems, in order, a chunk
    of rows at a time (at least one chunk, maybe empty) as soon as it and every earlier one are planned."""
    import os

    count = workers if workers is not None else (os.cpu_count() or 1) if len(rows) >= PARALLEL_ROWS else 1
    if count <= 1 or len(rows) <= CHUNK_ROWS:
        memo = _PlanMemo()
        yield [_plan_one(cells, row, library, settings, where, memo) for cells, row in rows]
        return
    yield from _plan_in_workers(rows, library, settings, where, campaign, count)


def _plan_one(cells: Mapping[str, str], row: int, library: StyleLibrary, settings: PlanSettings, where: str,
              memo: _PlanMemo) -> RowOutcome:
    try:
        return _plan_row(cells, row, library, settings, where, memo), None
    except _RowProblems as exc:
        return exc.problems


# A row planned in a worker, as plain values (cheaper to send back than the objects): its style,
# variants, placements, aspects, prompt and uploads, and its jobs' values (``plan.jobs.job_values``).
# The cells and row number are the main process's.
_Packed = tuple[Style, int, tuple[str, ...], tuple[str, ...], str, Mapping[str, Upload], list[tuple]]


def _plan_with_jobs(rows: Sequence[tuple[dict[str, str], int]], library: StyleLibrary, settings: PlanSettings,
                    where: str, campaign: str, memo: _PlanMemo, makers: dict[str, JobMaker],
                    packed: bool = False) -> list[RowOutcome | _Packed]:
    """Each row's problems, or the row and its jobs (``packed``: as a worker sends them, ``_pack``)."""
    outcomes: list[RowOutcome | _Packed] = []
    for cells, row in rows:
        outcome = _plan_one(cells, row, library, settings, where, memo)
        if not isinstance(outcome, list):
            planned = outcome[0]
            jobs = _row_jobs(campaign, planned, settings, None, makers, JobMaker.values if packed else JobMaker.job)
            outcome = _pack(planned, jobs) if packed else (planned, jobs)
        outcomes.append(outcome)
    return outcomes


def _plan_chunk(settings: PlanSettings, where: str, campaign: str,
                rows: Sequence[tuple[dict[str, str], int]] | int) -> list[_Packed | list[Problem]]:
    """A chunk of rows planned in a worker process: each row's problems, or the row and its jobs,
    packed. ``rows``: the rows, or in a forked worker the number of one of the chunks it was forked with."""
    if isinstance(rows, int):
        rows = _forked_chunks[rows]
    with cycle_collector_paused():
        return _plan_with_jobs(rows, StyleLibrary(settings.styles_dir), settings, where, campaign, _PlanMemo(), {},
                               packed=True)


# In a forked worker: the chunks of the plan it was forked for (``_keep_chunks``); empty elsewhere.
_forked_chunks: list[Sequence[tuple[dict[str, str], int]]] = []


def _keep_chunks(chunks: list[Sequence[tuple[dict[str, str], int]]]) -> None:
    """Pool initializer of a forked worker: the chunks are there already (the fork copied them), so
    each task names its chunk by number instead of sending its rows."""
    _forked_chunks[:] = chunks


def _may_fork() -> bool:
    """Workers are forked (nothing to import, the rows there already) when this process runs no
    other Python thread: a thread could hold a lock (logging, an import) that would stay locked in
    the child. Otherwise (Prefect runs threads) they are spawned. The child only plans rows: no
    library thread pool it may have inherited (BLAS, tokenizers) is used in it."""
    import multiprocessing
    import threading

    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


# Bytes a worker may write to this process before it waits for this process to read: a chunk's
# results (~0.75 MB for 1,000 rows of the bench sheet) fit whole (Linux's limit for a pipe without
# privileges, /proc/sys/fs/pipe-max-size, is 1 MiB by default).
RESULT_PIPE_BYTES = 1 << 20


def _widen_result_pipe(pool: object) -> int | None:
    """Widens the pipe that ``pool``'s workers send results through to ``RESULT_PIPE_BYTES``, and
    says how wide it is (None where it cannot: not Linux, or another ``concurrent.futures``). With
    Linux's default 64 KiB a worker waited for each chunk's results to be read by this process's
    result thread, which reads in turns with the planning here (the GIL): a quarter of the
    worker's time in a 100k-row plan."""
    try:
        import fcntl

        reader = pool._result_queue._reader.fileno()  # type: ignore[attr-defined]
        fcntl.fcntl(reader, fcntl.F_SETPIPE_SZ, RESULT_PIPE_BYTES)
        return fcntl.fcntl(reader, fcntl.F_GETPIPE_SZ)
    except (ImportError, AttributeError, OSError):  # no fcntl or no such attribute, or a lower limit: as it was
        return None


def _pack(planned: PlannedRow, jobs: list[tuple]) -> _Packed:
    """``planned`` and its jobs' values (``plan.jobs.job_values``) as a worker sends them."""
    return planned.style, planned.variants, planned.placements, planned.aspects, planned.prompt, planned.uploads, jobs


def _unpack(packed: _Packed, cells: dict[str, str], row: int) -> tuple[PlannedRow, list[RenderJob]]:
    style, variants, placements, aspects, prompt, uploads, jobs = packed
    # A row planned already: made without the frozen dataclass's ``__init__`` (one ``object.__setattr__`` a field)
    planned = object.__new__(PlannedRow)
    planned.__dict__.update(row=row, asset_id=cells.get("asset_id", ""), style=style, variants=variants,
                            placements=placements, aspects=aspects, prompt=prompt, cells=cells, uploads=uploads)
    return planned, [job_from_values(values) for values in jobs]


# Chunks sent to each worker and not yet planned, so that a worker has its next chunk at hand while
# this process plans one of its own (with 2, a worker waited 1.2-1.8 s in a 100k-row plan); never
# more than the chunks nobody has taken yet, so the workers' last chunks end with this process's.
_QUEUED = 3


def _plan_in_workers(rows: Sequence[tuple[dict[str, str], int]], library: StyleLibrary, settings: PlanSettings,
                     where: str, campaign: str, count: int) -> Iterator[list[RowOutcome]]:
    """Chunks of rows planned by ``count - 1`` worker processes (``_may_fork``) and by this process,
    each taking the first chunk nobody has taken. This process starts at once (the workers take a
    while to start) and hands each worker its next chunks before it needs them. Each chunk is
    yielded, in order, once it and every earlier one are done: so rows are settled while later
    ones are planned, and only the last chunks' rows are left at the end."""
    import multiprocessing
    from collections import deque
    from concurrent.futures import Future, ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    chunks = [rows[i:i + CHUNK_ROWS] for i in range(0, len(rows), CHUNK_ROWS)]
    left = deque(range(len(chunks)))  # chunks nobody has taken yet
    sent: dict[int, Future] = {}
    done: dict[int, list[RowOutcome]] = {}
    given = 0  # chunks yielded so far
    memo = _PlanMemo()
    makers: dict[str, JobMaker] = {}

    def here(index: int) -> None:  # with their jobs, as in the workers (so the work is shared evenly)
        done[index] = _plan_with_jobs(chunks[index], library, settings, where, campaign, memo, makers)

    def receive(wait: bool) -> None:
        """The workers' chunks that are done (with ``wait``: all), unpacked (and let go of as sent)."""
        for index, future in list(sent.items()):
            if not (wait or future.done()):
                continue
            del sent[index]
            try:
                packed = future.result()
            except BrokenProcessPool:  # a worker could not start (e.g. a main script without a __main__ guard)
                here(index)
                continue
            done[index] = [outcome if isinstance(outcome, list) else _unpack(outcome, cells, row)
                           for outcome, (cells, row) in zip(packed, chunks[index])]

    forked = _may_fork()
    pool = ProcessPoolExecutor(count - 1, mp_context=multiprocessing.get_context("fork"), initializer=_keep_chunks,
                               initargs=(chunks,)) if forked else \
        ProcessPoolExecutor(count - 1, mp_context=multiprocessing.get_context("spawn"))
    with pool:
        _widen_result_pipe(pool)
        broken = False
        while left:
            while not broken and left and \
                    sum(not future.done() for future in sent.values()) < min(_QUEUED * (count - 1), len(left)):
                try:
                    sent[left[0]] = pool.submit(_plan_chunk, settings, where, campaign,
                                                left[0] if forked else chunks[left[0]])
                    left.popleft()
                except BrokenProcessPool:  # a worker could not start: this process plans the rest
                    broken = True
            if left:
                here(left.popleft())
            receive(wait=False)
            while given in done:
                yield done.pop(given)
                given += 1
        receive(wait=True)
    for index in range(given, len(chunks)):
        yield done.pop(index)
