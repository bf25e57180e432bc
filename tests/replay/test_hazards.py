"""The static analysis of what a checkpoint does not hold, on libcst trees of real idioms."""

from __future__ import annotations

import textwrap

import pytest

from flor.replay.classify import NESTED, OUTER, classify

HEAD = """\
import copy
import numpy as np
import torch
import flor
from torch.nn import functional as F

model = torch.nn.Linear(2, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
"""


def hazards(body: str, *, prelude: str = "", local: set[str] | None = None):  # type: ignore[no-untyped-def]
    source = (
        HEAD
        + textwrap.dedent(prelude)
        + (
            "with flor.checkpointing(model=model, optimizer=optimizer):\n"
            '    for epoch in flor.loop("epoch", range(3)):\n'
            + textwrap.indent(textwrap.dedent(body), " " * 8)
            + '        flor.log("h", 1)\n'
        )
    )
    return classify(source, ["h"], local).hazards


@pytest.mark.parametrize(
    ("body", "carried"),
    [
        ("history.append(loss)\n", {"history"}),
        ("global_step += 1\n", {"global_step"}),
        ('ema["w"] = 0.9 * ema["w"]\n', {"ema"}),
        ("np.random.shuffle(order)\n", {"order"}),
        ("scheduler.step()\n", {"scheduler"}),
        ("if (gap := best - 1) > 0:\n    best = 1\n", {"gap", "best"}),
        ("if loss < best:\n    best = loss\n", {"best"}),
        ("count(3)\n", {"seen"}),
        ("update(ema, model)\n", {"ema"}),
    ],
)
def test_state_carried_across_iterations_is_found(body: str, carried: set[str]) -> None:
    prelude = """\
    seen = 0
    def count(n):
        global seen
        seen += n
    def update(avg, net):
        avg["w"] = net.weight.detach().clone()
    """
    found = hazards("loss = 1.0\n" + body, prelude=prelude)
    assert found.carried == carried and found.why_not_restore() is not None


def test_per_iteration_temporaries_and_checkpointed_objects_are_not_carried() -> None:
    found = hazards(
        """\
        model.train()
        running = 0.0
        for x, y in flor.loop("step", [(1, 2)]):
            optimizer.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            running += loss.item()
        model.eval()
        with torch.no_grad():
            val = model(x).sum().item()
        best_state = copy.deepcopy(model.state_dict())
        """
    )
    assert found.carried == set() and not found.attribute_stores
    assert found.why_not_restore() is None and not found.after_nested_effects


def test_attribute_stores_break_and_effects_after_a_nested_loop() -> None:
    found = hazards(
        """\
        for x in flor.loop("step", range(2)):
            optimizer.step()
        for p in model.parameters():
            p.requires_grad = True
        if epoch > 1:
            break
        """
    )
    assert found.attribute_stores and found.breaks and found.after_nested_effects


def test_a_break_inside_a_nested_loop_is_not_the_main_loops() -> None:
    found = hazards('for x in flor.loop("step", range(2)):\n    if x:\n        break\n')
    assert not found.breaks


def test_project_modules_are_opaque_and_change_their_arguments() -> None:
    found = hazards(
        "helpers.bump(state)\n", prelude="import helpers\nstate = {}\n", local={"helpers"}
    )
    assert found.carried == {"state", "helpers.*"}  # its code was not given: its state too
    assert hazards("np.mean(state)\n", prelude="state = []\n").carried == set()


def test_statements_in_an_enumerated_flor_loop_are_nested() -> None:
    source = HEAD + textwrap.dedent(
        """\
        with flor.checkpointing(model=model, optimizer=optimizer):
            for epoch in flor.loop("epoch", range(3)):
                for i, (x, y) in enumerate(flor.loop("step", [(1, 2)])):
                    flor.log("g", i)
                flor.log("o", epoch)
        """
    )
    places = classify(source, ["g", "o"]).places
    assert places == {"g": {NESTED}, "o": {OUTER}}
