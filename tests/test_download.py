"""masr.corpora.download: checked, resumable downloads; safe, once-only extraction."""

import hashlib
import http.server
import io
import os
import tarfile
import threading
import zipfile

import pytest

from masr.corpora import download as dl

DATA = bytes(range(256)) * 1000  # 256,000 bytes
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(dl.time, "sleep", lambda s: None)


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "src" / "corpus.bin"
    path.parent.mkdir()
    path.write_bytes(DATA)
    return path


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves DATA at any path; honours ``Range`` unless the server says not to; can drop the
    connection half-way through the first response."""

    def do_GET(self):
        server = self.server
        server.ranges.append(self.headers.get("Range"))
        if self.path == "/missing":
            self.send_error(404)
            return
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng and server.honour_range:
            start, status = int(rng.split("=")[1].split("-")[0]), 206
        body = DATA[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(DATA) - 1}/{len(DATA)}")
        self.end_headers()
        if server.drop_first:
            server.drop_first = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.ranges, srv.honour_range, srv.drop_first = [], True, False
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


# ----------------------------------------------------------------------------- download


def test_file_url_with_checksum(source, tmp_path):
    dest = tmp_path / "out" / "corpus.bin"
    md5 = hashlib.md5(DATA).hexdigest()
    assert dl.download(source.as_uri(), dest, sha256=SHA, md5=md5, progress=False) == str(dest)
    assert dest.read_bytes() == DATA
    assert not os.path.exists(str(dest) + ".part")


def test_wrong_checksum_raises_and_leaves_no_file(source, tmp_path):
    dest = tmp_path / "corpus.bin"
    with pytest.raises(dl.ChecksumError) as e:
        dl.download(source.as_uri(), dest, sha256="0" * 64, progress=False)
    msg = str(e.value)
    assert source.as_uri() in msg and str(dest) in msg and "0" * 64 in msg and SHA in msg
    assert os.listdir(tmp_path) == ["src"]


def test_existing_verified_file_is_skipped(tmp_path):
    dest = tmp_path / "corpus.bin"
    dest.write_bytes(DATA)
    gone = (tmp_path / "nowhere.bin").as_uri()  # would fail if fetched
    assert dl.download(gone, dest, sha256=SHA, progress=False) == str(dest)
    assert dl.download(gone, dest, progress=False) == str(dest)  # no checksum: kept as it is


def test_existing_file_with_wrong_checksum_is_fetched_again(source, tmp_path):
    dest = tmp_path / "corpus.bin"
    dest.write_bytes(b"stale")
    dl.download(source.as_uri(), dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA


def test_truncated_part_is_resumed_with_range(server, tmp_path):
    dest = tmp_path / "corpus.bin"
    (tmp_path / "corpus.bin.part").write_bytes(DATA[:1000])
    dl.download(server.url + "/corpus.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA
    assert server.ranges == ["bytes=1000-"]
    assert not (tmp_path / "corpus.bin.part").exists()


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.honour_range = False
    dest = tmp_path / "corpus.bin"
    (tmp_path / "corpus.bin.part").write_bytes(b"x" * 1000)  # not even a prefix of the content
    dl.download(server.url + "/corpus.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA


def test_dropped_connection_is_resumed(server, tmp_path):
    server.drop_first = True
    dest = tmp_path / "corpus.bin"
    dl.download(server.url + "/corpus.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA
    assert server.ranges[0] is None and server.ranges[1] == f"bytes={len(DATA) // 2}-"


def test_incomplete_download_keeps_part_for_resume(server, tmp_path):
    server.drop_first = True
    dest = tmp_path / "corpus.bin"
    with pytest.raises(dl.DownloadError, match="resume"):
        dl.download(server.url + "/corpus.bin", dest, progress=False, retries=0)
    assert not dest.exists()
    assert (tmp_path / "corpus.bin.part").read_bytes() == DATA[: len(DATA) // 2]
    dl.download(server.url + "/corpus.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA


def test_http_error_names_the_url(server, tmp_path):
    with pytest.raises(dl.DownloadError, match="/missing: HTTP 404"):
        dl.download(server.url + "/missing", tmp_path / "x.bin", progress=False)


# ----------------------------------------------------------------------------- extraction


def make_tar(path, members, mode="w"):
    """``members``: list of (name, bytes) for files, or TarInfo objects for links/devices."""
    with tarfile.open(path, mode) as t:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                t.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                t.addfile(info, io.BytesIO(m[1]))
    return path


def link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("suffix,mode", [(".tar", "w"), (".tar.gz", "w:gz"), (".tar.bz2", "w:bz2"),
                                         (".tar.xz", "w:xz")])
def test_tar_extracts_with_marker(tmp_path, suffix, mode):
    members = [("c/a.txt", b"a"), ("c/sub/b.txt", b"b"), link("c/sub/l", "../a.txt")]
    archive = make_tar(tmp_path / f"c{suffix}", members, mode)
    target = tmp_path / "out"
    dl.safe_extract(archive, target)
    assert (target / "c" / "a.txt").read_bytes() == b"a"
    assert (target / "c" / "sub" / "l").read_bytes() == b"a"  # a link inside the target is fine
    assert sorted(os.listdir(target)) == [f".extracted-c{suffix}", "c"]


def test_zip_extracts(tmp_path):
    archive = tmp_path / "c.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("wav/a.wav", b"a")
    dl.safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "wav" / "a.wav").read_bytes() == b"a"


@pytest.mark.parametrize("member,reason", [
    (("../evil", b"x"), "'..'"),
    (("ok/../../evil", b"x"), "'..'"),
    (("/tmp/masr-abs-evil", b"x"), "absolute path"),
    (link("etc", "/etc"), "link"),
    (link("up", "../.."), "link"),
    (link("d/up", "../../evil"), "link"),
    (link("hard", "../evil", tarfile.LNKTYPE), "hard link"),
    (link("dev", "", tarfile.CHRTYPE), "device"),
])
def test_unsafe_tar_member_is_refused(tmp_path, member, reason):
    archive = make_tar(tmp_path / "bad.tar", [("good.txt", b"g"), member])
    (tmp_path / "box").mkdir()
    target = tmp_path / "box" / "out"
    with pytest.raises(dl.UnsafeArchiveError) as e:
        dl.safe_extract(archive, target)
    name = member[0] if isinstance(member, tuple) else member.name
    assert str(archive) in str(e.value) and f"'{name}'" in str(e.value) and reason in str(e.value)
    assert not target.exists()  # nothing written, not even the good member
    assert sorted(os.listdir(tmp_path)) == ["bad.tar", "box"] and os.listdir(tmp_path / "box") == []
    assert not os.path.exists("/tmp/masr-abs-evil")


def test_zip_with_dotdot_is_refused(tmp_path):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("good.txt", b"g")
        z.writestr("../evil", b"x")
    with pytest.raises(dl.UnsafeArchiveError, match=r"bad\.zip: refusing to extract member '\.\./evil'"):
        dl.safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "evil").exists()


def test_not_an_archive(tmp_path):
    (tmp_path / "x.tar").write_bytes(b"not an archive")
    with pytest.raises(dl.UnsafeArchiveError, match="not a readable tar or zip"):
        dl.safe_extract(tmp_path / "x.tar", tmp_path / "out")


def test_complete_extraction_is_skipped(tmp_path):
    archive = make_tar(tmp_path / "c.tar", [("c/a.txt", b"a")])
    target = tmp_path / "out"
    dl.safe_extract(archive, target)
    (target / "c" / "a.txt").write_bytes(b"edited")
    dl.safe_extract(archive, target)
    assert (target / "c" / "a.txt").read_bytes() == b"edited"


def test_interrupted_extraction_is_redone_from_scratch(tmp_path):
    archive = make_tar(tmp_path / "c.tar", [("c/a.txt", b"a"), ("c/b.txt", b"b")])
    target = tmp_path / "out"
    # what an interrupted run leaves: a half-written member, a stray file, staging, no marker
    (target / "c").mkdir(parents=True)
    (target / "c" / "a.txt").write_bytes(b"")
    (target / "c" / "partial.tmp").write_bytes(b"?")
    (target / ".extracting-c.tar" / "c").mkdir(parents=True)
    dl.safe_extract(archive, target)
    assert sorted(os.listdir(target)) == [".extracted-c.tar", "c"]
    assert sorted(os.listdir(target / "c")) == ["a.txt", "b.txt"]
    assert (target / "c" / "a.txt").read_bytes() == b"a"


def test_changed_archive_is_extracted_again(tmp_path):
    archive = make_tar(tmp_path / "c.tar", [("c/a.txt", b"a")])
    target = tmp_path / "out"
    dl.safe_extract(archive, target)
    make_tar(archive, [("c/a.txt", b"new content")])
    dl.safe_extract(archive, target)
    assert (target / "c" / "a.txt").read_bytes() == b"new content"


def test_require_manual(tmp_path):
    assert dl.require_manual(str(tmp_path), "IEMOCAP", "https://sail.usc.edu/iemocap/") == str(tmp_path)
    with pytest.raises(dl.ManualDownloadError) as e:
        dl.require_manual(str(tmp_path / "iemocap"), "IEMOCAP", "https://sail.usc.edu/iemocap/")
    assert "IEMOCAP needs a manual download" in str(e.value)
    assert "https://sail.usc.edu/iemocap/" in str(e.value) and "--data-root" in str(e.value)


LINK_CHAINS = {
    # id: (members, the member refused, words of the reason)
    # p/q/r/b2 -> c -> ../../.. (the target); a -> b2/../.. is two levels above it, and the file
    # written through a lands outside the target folder
    "chain_of_two_links": (
        [link("p/q/r/c", "../../.."), link("p/q/r/b2", "c"), link("p/q/r/a", "b2/../.."), ("p/q/r/a/evil.txt", b"x")],
        "p/q/r/a", "symbolic link to 'b2/../..' leads outside the target folder through the archive's symbolic link"),
    # x/y/z/dl -> ../../.. (the target); a -> dl/../../.. goes three levels above it
    "link_to_dir_link_then_dotdot": (
        [link("x/y/z/dl", "../../.."), link("x/y/z/a", "dl/../../.."), ("x/y/z/a/evil.txt", b"x")],
        "x/y/z/a", "leads outside the target folder through the archive's symbolic link 'x/y/z/dl'"),
    "loop": ([link("a", "b"), link("b", "a")], "b", "symbolic link loop or chain of more than 40 links"),
    # a hard link's target is followed through links too: dl/../../.. is three levels above the target
    "hard_link_through_dir_link": (
        [link("x/y/z/dl", "../../.."), link("h", "x/y/z/dl/../../../secret", tarfile.LNKTYPE)],
        "h", "hard link to 'x/y/z/dl/../../../secret' leads outside the target folder"),
    # a -> b/../.. is harmless while b does not exist; the later b -> ../.. sends it outside
    "later_link_redirects_an_earlier_one": (
        [link("x/y/a", "b/../.."), link("x/y/b", "../..")],
        "x/y/a", "symbolic link to 'b/../..' leads outside the target folder"),
}


@pytest.mark.parametrize("data_filter", [True, False], ids=["data_filter", "no_data_filter"])
@pytest.mark.parametrize("kind", sorted(LINK_CHAINS))
def test_symlink_chain_leaving_the_target_is_refused(tmp_path, monkeypatch, kind, data_filter):
    members, refused, reason = LINK_CHAINS[kind]
    if not data_filter:  # as on Python 3.10.0-3.10.11: the pre-check alone must be safe
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    archive = make_tar(tmp_path / "bad.tar", [("good.txt", b"g")] + members)
    (tmp_path / "box").mkdir()
    target = tmp_path / "box" / "out"
    with pytest.raises(dl.UnsafeArchiveError) as e:
        dl.safe_extract(archive, target)
    message = str(e.value)
    assert message.startswith(f"{archive}: refusing to extract member '{refused}': "), message
    assert reason in message and message.endswith("; nothing was extracted")
    assert not target.exists()  # nothing written, not even the good member
    assert sorted(os.listdir(tmp_path)) == ["bad.tar", "box"] and os.listdir(tmp_path / "box") == []


def test_benign_link_chains_inside_the_archive_extract(tmp_path):
    members = [("c/real.txt", b"r"), link("c/b", "real.txt"), link("c/a", "b"), ("c/sub/f.txt", b"f"),
               link("c/d", "sub"), link("c/e", "d/../d/f.txt"), link("c/top", "d/.."), ("c/top/g.txt", b"g")]
    archive = make_tar(tmp_path / "c.tar", members)
    target = tmp_path / "out"
    dl.safe_extract(archive, target)
    assert (target / "c" / "a").read_bytes() == b"r"  # a -> b -> real.txt
    assert (target / "c" / "e").read_bytes() == b"f"  # through the folder link d -> sub
    assert (target / "c" / "g.txt").read_bytes() == b"g"  # written through top -> d/.. = c
    assert os.readlink(target / "c" / "a") == "b"
