"""The llama.cpp engine's kept places: which is restored, which are dropped."""

from __future__ import annotations

from completion.engines.llamacpp import _KeptStates


def _state(size: int) -> bytes:
    return bytes(size)


def test_the_place_sharing_most_is_taken_out() -> None:
    kept = _KeptStates(capacity=1000)
    kept.put([1, 2, 3, 4, 5, 6], _state(10))
    kept.put([1, 2, 9, 9, 9, 9], _state(10))
    assert kept.take([7, 7, 7], more_than=0) is None
    assert kept.take([1, 2, 3, 4, 0], more_than=4) is None  # not enough to gain
    found = kept.take([1, 2, 3, 4, 0], more_than=2)
    assert found is not None
    assert found[0] == [1, 2, 3, 4, 5, 6]
    assert len(kept) == 1  # the context holds it now


def test_the_oldest_places_go_past_the_budget() -> None:
    kept = _KeptStates(capacity=25)
    for first in (1, 2, 3):
        kept.put([first] * 10, _state(10))
    assert len(kept) == 2
    assert kept.take([1] * 10, more_than=0) is None
    assert kept.take([3] * 10, more_than=0) is not None


def test_a_new_place_drops_the_older_ones_it_holds_nearly_whole() -> None:
    kept = _KeptStates(capacity=1000)
    kept.put(list(range(20)), _state(10))
    kept.put(list(range(30)), _state(10))  # the same place, the user typed on
    assert len(kept) == 1
    kept.put(list(range(10)) + [99] * 20, _state(10))  # shares a third: another place
    assert len(kept) == 2
