"""Local acceptance statistics from the client's show/accept/reject notifications.

Kept in a JSON file on this machine (nothing is ever sent anywhere):
`$OFFPILOT_STATE_DIR/stats.json`, default `~/.local/state/offpilot/stats.json`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def state_dir() -> Path:
    """Where offpilot keeps local state."""
    if env := os.environ.get("OFFPILOT_STATE_DIR"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "offpilot"


@dataclass
class LanguageStats:
    """Counters for one language."""

    shown: int = 0
    accepted: int = 0
    rejected: int = 0
    accepted_chars: int = 0
    shown_chars: int = 0

    @property
    def acceptance_rate(self) -> float:
        """Accepted suggestions per shown suggestion."""
        return self.accepted / self.shown if self.shown else 0.0


class Stats:
    """Per-language counters, persisted after each event."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / "stats.json"
        self.languages: dict[str, LanguageStats] = {}
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.languages = {k: LanguageStats(**v) for k, v in data["languages"].items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable stats file %s: %s", self.path, exc)

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(
                json.dumps({"languages": {k: asdict(v) for k, v in self.languages.items()}})
            )
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot save stats to %s: %s", self.path, exc)

    def record(self, event: str, language: str, length: int = 0) -> None:
        """Count a `shown`, `accepted` (with accepted length) or `rejected` event."""
        s = self.languages.setdefault(language or "unknown", LanguageStats())
        if event == "shown":
            s.shown += 1
            s.shown_chars += max(0, length)
        elif event == "accepted":
            s.accepted += 1
            s.accepted_chars += max(0, length)
        elif event == "rejected":
            s.rejected += 1
        else:
            raise ValueError(f"unknown event {event!r}")
        self._save()

    def summary(self) -> dict[str, Any]:
        """JSON-ready counters with acceptance rates, per language and in total."""
        total = LanguageStats()
        out: dict[str, Any] = {"languages": {}, "path": str(self.path)}
        for lang, s in sorted(self.languages.items()):
            out["languages"][lang] = {**asdict(s), "acceptance_rate": round(s.acceptance_rate, 4)}
            for f in ("shown", "accepted", "rejected", "accepted_chars", "shown_chars"):
                setattr(total, f, getattr(total, f) + getattr(s, f))
        out["total"] = {**asdict(total), "acceptance_rate": round(total.acceptance_rate, 4)}
        return out


def format_summary(summary: dict[str, Any]) -> str:
    """A small table for `offpilot stats`."""
    rows = [f"{'language':12} {'shown':>7} {'accepted':>9} {'rate':>6} {'chars accepted':>15}"]
    for lang, s in [*summary["languages"].items(), ("TOTAL", summary["total"])]:
        rate = s["acceptance_rate"]
        rows.append(
            f"{lang:12} {s['shown']:7} {s['accepted']:9} {rate:6.1%} {s['accepted_chars']:15}"
        )
    rows.append(f"(stored locally in {summary['path']})")
    return "\n".join(rows)
