"""The model manifest and cache: list, fetch (download or local copy), verify, install.

Models live in the cache directory ($EDGECAM_HOME/models, else ~/.local/share/edgecam/models).
`fetch` takes a manifest entry's model (and label) file from its URL or from a local folder,
checks the sha256 recorded in models/manifest.toml, and only then writes it atomically
(temporary file + os.replace), so a cache never holds a half-written or unverified model.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from .config import ModelConfig
from .errors import EdgecamError
from .files import make_dir, write_atomic

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python < 3.11 on older Raspberry Pi OS
    import tomli as tomllib

DEFAULT_MODEL = "ssd_mobilenet_v1_coco"
MANIFEST_ENV = "EDGECAM_MANIFEST"
# A download larger than this is not a model we know: stop instead of filling the SD card.
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024
DOWNLOAD_TIMEOUT = 60.0


@dataclass(frozen=True)
class ModelEntry:
    """One [[model]] of the manifest: where the model and its labels come from and their hashes."""

    name: str
    file: str
    url: Optional[str] = None
    sha256: Optional[str] = None
    member: Optional[str] = None
    local_names: Tuple[str, ...] = ()
    labels_file: Optional[str] = None
    labels_url: Optional[str] = None
    labels_sha256: Optional[str] = None
    labels_member: Optional[str] = None
    labels_local_names: Tuple[str, ...] = ()
    kind: str = "detector"
    delegate: str = "cpu"
    input_size: Tuple[int, ...] = ()
    license: str = ""
    description: str = ""
    default: bool = False

    @property
    def verifiable(self) -> bool:
        """True when every file this entry installs has a recorded sha256."""
        return bool(self.sha256) and (not self.labels_file or bool(self.labels_sha256))


@dataclass(frozen=True)
class Artifact:
    """One file to install: its cache name, expected hash and where it may come from."""

    what: str
    file: str
    sha256: str
    url: Optional[str]
    member: Optional[str]
    local_names: Tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class FetchResult:
    """What `fetch` left in the cache: paths, and whether anything had to be written."""

    name: str
    model_path: Path
    labels_path: Optional[Path]
    written: Tuple[Path, ...]


def model_cache_dir(env: Optional[Mapping[str, str]] = None) -> Path:
    """$EDGECAM_HOME/models when EDGECAM_HOME is set, else ~/.local/share/edgecam/models."""
    env = os.environ if env is None else env
    home = env.get("EDGECAM_HOME")
    if home:
        return Path(home) / "models"
    data_home = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "edgecam" / "models"


def manifest_path(env: Optional[Mapping[str, str]] = None) -> Path:
    """The manifest in use: $EDGECAM_MANIFEST, the source checkout's, or the installed copy."""
    env = os.environ if env is None else env
    if env.get(MANIFEST_ENV):
        return Path(env[MANIFEST_ENV])
    candidates = [
        Path(__file__).resolve().parent.parent / "models" / "manifest.toml",
        # scripts/install.sh copies it here, beside the venv the package lives in.
        Path(sys.prefix) / "share" / "edgecam" / "manifest.toml",
    ]
    for path in candidates:
        if path.is_file():
            return path
    return candidates[0]


def _entry(raw: Mapping[str, object], where: str) -> ModelEntry:
    known = set(ModelEntry.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise EdgecamError(f"{where}: unknown key(s) {', '.join(unknown)}")
    for key in ("name", "file"):
        if not isinstance(raw.get(key), str) or not raw.get(key):
            raise EdgecamError(f"{where}: `{key}` must be a non-empty string")
    values = dict(raw)
    for key in ("local_names", "labels_local_names", "input_size"):
        if key in values:
            values[key] = tuple(values[key])  # type: ignore[arg-type]
    for key in ("sha256", "labels_sha256"):
        digest = values.get(key)
        if digest is not None and (
            not isinstance(digest, str)
            or len(digest) != 64
            or any(c not in "0123456789abcdef" for c in digest)
        ):
            raise EdgecamError(f"{where}: `{key}` must be 64 lower-case hex digits")
    for key in ("file", "labels_file"):
        name = values.get(key)
        if isinstance(name, str) and (os.path.basename(name) != name or name in (".", "..")):
            raise EdgecamError(f"{where}: `{key}` must be a plain file name, got {name!r}")
    return ModelEntry(**values)  # type: ignore[arg-type]


def load_manifest(path: Optional[Path] = None) -> Dict[str, ModelEntry]:
    """Manifest entries by name, validated; an EdgecamError names a broken entry."""
    path = Path(path) if path is not None else manifest_path()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise EdgecamError(
            f"model manifest not found: {path} (set {MANIFEST_ENV}=FILE, "
            "or reinstall with scripts/install.sh)"
        ) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise EdgecamError(f"cannot read model manifest {path}: {exc}") from None
    entries: Dict[str, ModelEntry] = {}
    for i, raw in enumerate(data.get("model", [])):
        entry = _entry(raw, f"model manifest {path}, entry {i + 1}")
        if entry.name in entries:
            raise EdgecamError(f"model manifest {path}: duplicate model {entry.name!r}")
        entries[entry.name] = entry
    defaults = [e.name for e in entries.values() if e.default]
    if len(defaults) > 1:
        raise EdgecamError(f"model manifest {path}: more than one default ({', '.join(defaults)})")
    return entries


def find_entry(name: str, entries: Mapping[str, ModelEntry]) -> ModelEntry:
    """The entry called `name`, or an EdgecamError listing the known names."""
    try:
        return entries[name]
    except KeyError:
        raise EdgecamError(
            f"unknown model {name!r}: run `edgecam models list` (known: {', '.join(entries)})"
        ) from None


def _artifacts(entry: ModelEntry) -> List[Artifact]:
    out = [Artifact("model", entry.file, entry.sha256 or "", entry.url, entry.member, entry.local_names)]
    if entry.labels_file:
        out.append(
            Artifact(
                "labels",
                entry.labels_file,
                entry.labels_sha256 or "",
                entry.labels_url,
                entry.labels_member,
                entry.labels_local_names,
            )
        )
    return out


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (models can be tens of MB on a small Pi)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_archive(name: str) -> bool:
    return name.endswith((".zip", ".tgz", ".tar.gz", ".tar"))


def _extract(blob: bytes, archive_name: str, member: str) -> bytes:
    """One member of a zip/tar archive, matched by its path or its base name."""
    try:
        if archive_name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                names = zf.namelist()
                match = _match_member(names, member)
                if match is not None:
                    return zf.read(match)
        else:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tf:
                names = [m.name for m in tf.getmembers() if m.isfile()]
                match = _match_member(names, member)
                if match is not None:
                    fh = tf.extractfile(match)
                    if fh is not None:
                        return fh.read()
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
        raise EdgecamError(
            f"{archive_name} is not a readable archive ({exc}): delete it and fetch again"
        ) from None
    raise EdgecamError(
        f"{archive_name} has no member {member!r} (it has: "
        f"{', '.join(names[:10])}): the manifest's `member` is wrong"
    )


def _match_member(names: List[str], member: str) -> Optional[str]:
    def bare(n: str) -> str:
        return n[2:] if n.startswith("./") else n

    for name in names:
        if bare(name) == bare(member):
            return name
    for name in names:
        if os.path.basename(name) == os.path.basename(member):
            return name
    return None


def download(url: str, timeout: float = DOWNLOAD_TIMEOUT, limit: int = MAX_DOWNLOAD_BYTES) -> bytes:
    """The body of an http(s) URL, or an EdgecamError saying what failed and what to do."""
    if not url.startswith(("https://", "http://")):
        raise EdgecamError(f"cannot download {url}: only http(s) URLs are supported")
    request = urllib.request.Request(url, headers={"User-Agent": "edgecam-models-fetch"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only
            data = response.read(limit + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EdgecamError(
            f"cannot download {url}: {reason} (check the network, or copy the "
            "files over and use `--from DIR`)"
        ) from None
    if len(data) > limit:
        raise EdgecamError(f"download of {url} is larger than {limit} bytes: refusing it")
    return data


class _Source:
    """Gets an artifact's bytes from a local folder or from its URL (each URL fetched once)."""

    def __init__(self, from_dir: Optional[Path], downloader: Callable[[str], bytes]):
        self.from_dir = from_dir
        self.downloader = downloader
        self._blobs: Dict[str, bytes] = {}

    def get(self, entry: ModelEntry, art: Artifact) -> Tuple[bytes, str]:
        if self.from_dir is not None:
            return self._local(entry, art)
        if not art.url:
            raise EdgecamError(
                f"no download URL for the {art.what} of {entry.name}: copy "
                f"{art.local_names[0] if art.local_names else art.file} into a "
                "folder and use `--from DIR`"
            )
        blob = self._blobs.get(art.url)
        if blob is None:
            blob = self._blobs[art.url] = self.downloader(art.url)
        archive = art.url.rsplit("/", 1)[-1]
        if _is_archive(archive):
            return _extract(blob, archive, art.member or art.file), f"{art.url}!{art.member or art.file}"
        return blob, art.url

    def _local(self, entry: ModelEntry, art: Artifact) -> Tuple[bytes, str]:
        from_dir = self.from_dir
        assert from_dir is not None  # asked only when a folder was given
        names = [art.file, *art.local_names]
        for name in names:
            path = from_dir / name
            if path.is_file():
                return path.read_bytes(), str(path)
        # The downloaded archive itself may have been copied over.
        archive = art.url.rsplit("/", 1)[-1] if art.url else ""
        if archive and _is_archive(archive) and (from_dir / archive).is_file():
            path = from_dir / archive
            return _extract(path.read_bytes(), str(path), art.member or art.file), f"{path}!{art.member}"
        raise EdgecamError(
            f"{self.from_dir} has no {art.what} file for {entry.name} (looked for "
            f"{', '.join(names + ([archive] if archive else []))})"
        )


def _installed(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_of(path) == sha256


def fetch(
    name: str,
    from_dir: Optional[os.PathLike] = None,
    force: bool = False,
    cache_dir: Optional[Path] = None,
    manifest: Optional[Mapping[str, ModelEntry]] = None,
    downloader: Callable[[str], bytes] = download,
) -> FetchResult:
    """Install model `name` (and its labels) into the cache, verified against the manifest.

    Files already present with the right hash are kept unless `force`. Every file is fetched
    and verified before the first one is written, so a failure leaves the cache unchanged.
    """
    entries = manifest if manifest is not None else load_manifest()
    entry = find_entry(name, entries)
    if not entry.verifiable:
        raise EdgecamError(
            f"model {name} has no recorded sha256, so it cannot be verified: "
            "download it yourself and run with `--model PATH`"
        )
    cache = Path(cache_dir) if cache_dir is not None else model_cache_dir()
    source_dir = Path(from_dir) if from_dir is not None else None
    if source_dir is not None and not source_dir.is_dir():
        raise EdgecamError(f"--from {source_dir}: not a directory")
    source = _Source(source_dir, downloader)
    pending: List[Tuple[Path, bytes]] = []
    for art in _artifacts(entry):
        target = cache / art.file
        if not force and _installed(target, art.sha256):
            continue
        data, origin = source.get(entry, art)
        got = hashlib.sha256(data).hexdigest()
        if got != art.sha256:
            raise EdgecamError(
                f"sha256 mismatch for the {art.what} of {name} from {origin}: "
                f"expected {art.sha256}, got {got}; nothing was written (the "
                "file is corrupt or not this model: fetch it again)"
            )
        pending.append((target, data))
    for target, data in pending:
        make_dir(target.parent)
        write_atomic(target, data, durable=True, mode=0o644)
    labels = cache / entry.labels_file if entry.labels_file else None
    return FetchResult(name, cache / entry.file, labels, tuple(t for t, _ in pending))


def default_entry(entries: Optional[Mapping[str, ModelEntry]] = None) -> ModelEntry:
    """The manifest's `default = true` entry."""
    entries = entries if entries is not None else load_manifest()
    for entry in entries.values():
        if entry.default:
            return entry
    return find_entry(DEFAULT_MODEL, entries)


def default_model(
    env: Optional[Mapping[str, str]] = None, entries: Optional[Mapping[str, ModelEntry]] = None
) -> Tuple[Path, Optional[Path]]:
    """(model path, labels path) of the installed default model, or an EdgecamError naming
    the command that installs it."""
    entry = default_entry(entries)
    cache = model_cache_dir(env)
    model = cache / entry.file
    labels = cache / entry.labels_file if entry.labels_file else None
    if not model.is_file() or (labels is not None and not labels.is_file()):
        raise EdgecamError(
            f"no model given and the default model is not installed in {cache}: "
            f"run `edgecam models fetch {entry.name}` (or give --model PATH)"
        )
    return model, labels


def resolve_model(
    model_cfg: ModelConfig, env: Optional[Mapping[str, str]] = None
) -> Tuple[str, Optional[str]]:
    """(model path, labels path) of a `[model]` config section: its own, else the installed
    default model's (labels from the section win), else an EdgecamError from `default_model`."""
    if model_cfg.path:
        return model_cfg.path, model_cfg.labels
    model, labels = default_model(env)
    return str(model), model_cfg.labels or (str(labels) if labels else None)
