"""``conjugacy._text.cut_list``: the one rule that cuts a list of names or sentences at a limit
with "and N more", and the messages built on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from conjugacy._text import cut_list
from conjugacy.stats import verdict
from conjugacy.store import StoreError
from conjugacy.store._safe import refuse_unsafe


def test_cut_list_keeps_the_first_items_and_counts_the_rest():
    assert cut_list(["a", "b", "c", "d", "e"], 3) == ["a", "b", "c", "and 2 more"]
    assert cut_list(iter([1, 2]), 1, "damaged runs") == ["1", "and 1 more damaged runs"]
    forms = ("damaged run", "damaged runs")
    assert cut_list(iter([1, 2]), 1, forms) == ["1", "and 1 more damaged run"]
    assert cut_list([1, 2, 3], 1, forms) == ["1", "and 2 more damaged runs"]
    assert cut_list([1], 1, forms) == ["1"]
    assert cut_list(["a", "b"], 2) == ["a", "b"]
    assert cut_list([], 1) == []
    with pytest.raises(ValueError, match="^limit must be at least 1, got 0$"):
        cut_list(["a"], 0)


def test_messages_name_the_first_items_and_how_many_more():
    with pytest.raises(StoreError) as err:
        refuse_unsafe(Path("/s"), ["link 'runs/x' to '/etc'", "fifo 'y'", "fifo 'z'"])
    assert str(err.value).startswith("store '/s' holds link 'runs/x' to '/etc', and 2 more: a "
                                     "store opened for writing may hold only folders")
    reason = verdict(None, None, kept_nothing=[f"c seed {i}" for i in range(7)]).reason
    assert reason.startswith("the residual filter kept no eigenpair of c seed 0, c seed 1, "
                             "c seed 2, c seed 3, c seed 4, and 2 more: no distance")
