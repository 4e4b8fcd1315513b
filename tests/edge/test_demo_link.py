"""edgectl finds a running demo by itself (edge/demo_link.py), against a real edge: told nothing, it
uses the demo's file and says so on stderr; told where, it never looks; a file whose process is
gone is ignored. The demo's own side (it writes and removes the file) is in tests/test_demo.py."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys

import pytest

from edge import demo_link
from edge.cli import main
from edge.config import parse_config
from tests.edge.conftest import running_edge, site_toml


@pytest.fixture
def xdg(tmp_path, monkeypatch):
    """edgectl as a user with their own state directory, told nothing of where the edge is."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("EDGE_CONFIG", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    return tmp_path / "xdg" / "sitecontroller" / "demo.json"


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


async def test_edgectl_uses_the_running_demo_when_told_nothing_else(tmp_path, xdg, capsys):
    config_file = tmp_path / "site.toml"
    config_file.write_text(site_toml(tmp_path))          # [api] port = 0: the demo's file has the real one
    async with running_edge(parse_config(config_file.read_text(), str(config_file),
                                         state_dir=str(tmp_path))) as edge:
        url = f"http://127.0.0.1:{edge.api.bound_port}/api/v1"
        link = demo_link.DemoLink(url=url, token=edge.api._token, config=str(config_file),
                                  state_dir=str(tmp_path), pid=os.getpid())
        assert demo_link.publish(link) == xdg
        assert stat.S_IMODE(xdg.stat().st_mode) == 0o600 and stat.S_IMODE(xdg.parent.stat().st_mode) == 0o700
        assert demo_link.running() == link

        code = await asyncio.to_thread(main, ["health"])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert err.startswith(f"edgectl: using the demo at {url} (config {config_file}, state {tmp_path})")
        assert "healthy" in out.lower()

        # Told where, it never looks (here: a config that does not exist, so it fails, and says why).
        code = await asyncio.to_thread(main, ["health", "--config", str(tmp_path / "other.toml")])
        out, err = capsys.readouterr()
        assert code != 0 and "using the demo" not in err and "other.toml" in err

        # A demo killed before it could remove its file: ignored.
        demo_link.publish(demo_link.DemoLink(url=url, token=link.token, config=link.config,
                                             state_dir=link.state_dir, pid=dead_pid()))
        assert demo_link.running() is None
        code = await asyncio.to_thread(main, ["health"])
        out, err = capsys.readouterr()
        assert "using the demo" not in err and code != 0

        # Another demo's file is not removed by this one's end; its own is.
        demo_link.withdraw(xdg)
        assert xdg.exists()
        demo_link.publish(link)
        demo_link.withdraw(xdg)
        assert not xdg.exists()


def test_an_unreadable_or_partial_file_is_no_demo(tmp_path):
    where = tmp_path / "demo.json"
    for text in ("", "{", '{"url": "http://x"}', '{"url": 1, "token": 2, "config": 3, "state_dir": 4, "pid": "x"}'):
        where.write_text(text)
        assert demo_link.running(where) is None, text
