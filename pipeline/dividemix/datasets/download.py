"""Archives behind checksums: fetched once into `data.raw_dir`, verified by md5, never overwritten.

An archive already in `data.raw_dir` (downloaded before, or placed there by the user to work
offline) is verified and used without any network access.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

from dividemix.datasets.spec import DataSourceError
from dividemix.files.atomic import atomic_path


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)  # an integrity check against the published sum, not security
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_archive(url: str, md5: str, raw_dir: Path, *, timeout: float = 60.0) -> Path:
    """The archive of `url` in `raw_dir`, verified against `md5`; downloaded only if absent.

    A file already there (downloaded before, or placed by the user to work offline) is verified
    and used without any network access; if its md5 differs it is refused, never overwritten
    (it may be the user's). A download goes to a temporary name beside the target and is renamed
    only once its md5 matches; a corrupt or partial download is removed.
    """
    name = PurePosixPath(urllib.parse.urlparse(url).path).name
    if not name:
        raise DataSourceError(f"data.url {url!r}: no file name at the end of the URL")
    raw_dir = Path(raw_dir)
    path = raw_dir / name
    if path.exists():
        actual = file_md5(path)
        if actual != md5:
            raise DataSourceError(
                f"{path}: md5 is {actual}, expected {md5} (corrupt, partial or another file); "
                f"not used: delete it (to download again) or replace it with the right archive"
            )
        return path
    raw_dir.mkdir(parents=True, exist_ok=True)
    print(f"[download] {url} -> {path}")
    with atomic_path(path) as tmp:  # removed unless the block completes
        actual = _download(url, tmp, timeout=timeout, hint=f"place {name} (md5 {md5}) in {raw_dir} to skip the download")
        if actual != md5:
            raise DataSourceError(
                f"{url}: the downloaded file's md5 is {actual}, expected {md5} (corrupt or partial); removed, not used"
            )
    return path


def _download(url: str, dest: Path, *, timeout: float, hint: str) -> str:
    """Stream `url` into `dest`; return the md5 of the bytes written."""
    digest = hashlib.md5(usedforsecurity=False)
    request = urllib.request.Request(url, headers={"User-Agent": "dividemix-pipeline"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
                digest.update(block)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:  # HTTPError is a URLError
        if isinstance(exc, urllib.error.HTTPError):
            reason = f"HTTP {exc.code} {exc.reason}"
        else:
            reason = getattr(exc, "reason", None) or exc
        raise DataSourceError(f"{url}: download failed ({reason}); {hint}") from None
    return digest.hexdigest()


