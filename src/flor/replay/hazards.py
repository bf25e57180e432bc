"""What a checkpoint does not hold: the state a replay would get wrong if it skipped work.

A restored checkpoint puts back the objects named in `flor.checkpointing` (their
`state_dict`) and the RNG states, nothing else. Anything else the main loop carries from
one iteration to the next (a best-so-far value, a history list, a global step counter, an
unlisted LR scheduler, an EMA dict, a shuffled index array, `requires_grad` flags,
parameter gradients) is stale after a restore. This module finds such state with libcst,
conservatively: a name counts as carried when the loop rebinds or mutates it and its
first use in an iteration is not a plain assignment. Mutation is seen through method
calls on the name, subscript and attribute stores, augmented assignment, walrus targets,
in-place calls (`shuffle(x)`, `f_(x)`), calls of objects whose `__call__` changes them,
helper functions and closures called from the loop (their `global`/`nonlocal` writes and
what they do to their arguments, also through the helpers they call), the project's own
modules the script imports (read from the run's snapshot: their module-level state), and
generators or iterators the loop reads across iterations.

The planner lets a strategy restore mid-run or skip work only when nothing is carried;
otherwise it re-executes. The dynamic guard (executor) backs this analysis up.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import libcst as cst

from flor.propagate.calls import is_flor_call

# Calls that change their arguments in place, besides torch's trailing-underscore ones.
_MUTATING_CALLS = frozenset(
    {"shuffle", "append", "extend", "update", "insert", "pop", "add", "remove", "clear",
     "sort", "reverse", "setdefault", "discard", "update_parameters", "copyto", "put",
     "next"}
)  # fmt: skip
# Methods that only read (or set a mode idempotently): safe to run twice after a restore.
_READ_ONLY_METHODS = frozenset(
    {"eval", "train", "parameters", "named_parameters", "state_dict", "buffers",
     "named_buffers", "modules", "children", "get_last_lr", "item", "tolist", "numpy",
     "detach", "cpu", "size", "dim", "numel", "mean", "sum", "norm", "argmax", "argmin",
     "float", "double", "max", "min", "std", "var", "abs", "clone", "copy", "keys",
     "values", "items", "get", "eq", "ne", "reshape", "view", "flatten", "squeeze",
     "unsqueeze", "softmax", "log_softmax", "sqrt", "pow", "exp", "log", "round", "all",
     "any", "astype", "format", "join", "startswith", "endswith", "lower", "upper"}
)  # fmt: skip
# Text that draws random numbers (consumes RNG state a restore would have to redo).
_RNG_WORDS = (
    "rand", "shuffle", "sample", "normal", "dropout", "bernoulli", "choice", "permut",
    "multinomial", "uniform", "poisson", "binomial", "exponential", "geometric", "gumbel",
    "cauchy",
)  # fmt: skip
# Statement text that reads something a replay cannot reproduce.
UNREPRODUCIBLE = (
    ("time.time", "the wall clock"), ("time.perf_counter", "the wall clock"),
    ("time.monotonic", "the wall clock"), ("time.process_time", "the CPU clock"),
    ("datetime.now", "the wall clock"), ("datetime.utcnow", "the wall clock"),
    ("datetime.today", "the wall clock"), ("uuid.", "a random id"),
    ("os.urandom", "the OS entropy pool"), ("secrets.", "the OS entropy pool"),
    ("SystemRandom", "the OS entropy pool"), ("default_rng()", "an unseeded RNG"),
    ("Random()", "an unseeded RNG"), ("os.getpid", "the process id"),
)  # fmt: skip
# The same, where a name alone says it (`from time import perf_counter`, `time()`).
_UNREPRODUCIBLE_CALLS = re.compile(
    r"\b(?:(?P<clock>time|now|utcnow|today|perf_counter(?:_ns)?|monotonic(?:_ns)?|time_ns"
    r"|localtime|gmtime|ctime|asctime)|(?P<cpu>process_time(?:_ns)?|thread_time(?:_ns)?"
    r"|times|getrusage)|(?P<memory>memory_allocated|max_memory_allocated|memory_reserved"
    r"|get_traced_memory|memory_info|virtual_memory))\("
)
_CALL_KINDS = {"clock": "the wall clock", "cpu": "the CPU clock", "memory": "memory use"}
# Generators made without a seed (`RandomState()`, `default_rng(None)`): seeded by the OS.
_UNSEEDED_GENERATOR = re.compile(r"\b(?:RandomState|default_rng|Random)\(\s*(?:None\s*)?\)")
# Draws from the global generators of `random` and numpy, which start from OS entropy unless
# the script seeds them (torch's global generator starts from a fixed seed).
_PYTHON_DRAW = re.compile(
    r"(?<![\w.])random\.(?:random|uniform|randint|randrange|choice|choices|sample|shuffle|"
    r"gauss|normalvariate|lognormvariate|betavariate|expovariate|gammavariate|triangular|"
    r"vonmisesvariate|paretovariate|weibullvariate|getrandbits|randbytes)\("
)
_NUMPY_DRAW = re.compile(
    r"\b(?:np|numpy)\.random\.(?!seed\b|get_state\b|set_state\b|default_rng\b|"
    r"RandomState\b|Generator\b|SeedSequence\b|PCG64|MT19937|Philox|SFC64|BitGenerator)\w+\("
)
_SEEDS_ALL = re.compile(r"\b(?:seed_everything|set_seed|seed_all)\(\s*[^)\s]")
_SEEDS_PYTHON = re.compile(r"(?<![\w.])random\.seed\(\s*[^)\s]")
_SEEDS_NUMPY = re.compile(r"\b(?:np|numpy)\.random\.seed\(\s*[^)\s]")
# Recorded statements whose values differ between executions by nature (timings, memory):
# the guard does not compare them.
_VOLATILE_WORDS = frozenset(
    {"time", "times", "elapsed", "sec", "secs", "second", "seconds", "duration", "clock",
     "speed", "throughput", "memory", "mem", "rss", "pid", "host", "hostname", "date",
     "now", "perf", "counter", "monotonic", "walltime"}
)  # fmt: skip


@dataclass
class Hazards:
    """What the main loop carries beyond the checkpoint, and where."""

    carried: set[str] = field(default_factory=set)
    attribute_stores: bool = False
    breaks: bool = False
    suffix_reads: set[str] = field(default_factory=set)
    loop_writes: set[str] = field(default_factory=set)
    # top-level statements of the loop body after its first nested flor.loop that may
    # change state (executed twice when the nested loop is skipped)
    after_nested_effects: bool = False
    # names given to flor.checkpointing that the loop binds to a new object
    rebound: set[str] = field(default_factory=set)
    # why the main loop could not be analysed at all, if it could not
    unanalysed: str = ""
    # the main loop writes files that it, or code after it, reads back
    file_roundtrip: str = ""

    def why_not_restore(self) -> str | None:
        """Why restoring a checkpoint mid-run would give a different state, if it would."""
        if self.unanalysed:
            return self.unanalysed
        if self.rebound:
            names = ", ".join(sorted(self.rebound)[:4])
            return (
                f"the main loop replaces {names}, which flor.checkpointing holds: its "
                "checkpoints keep the object it was given, not the new one"
            )
        if self.carried:
            names = ", ".join(sorted(self.carried)[:4])
            return f"the main loop carries state no checkpoint holds ({names})"
        if self.attribute_stores:
            return "the main loop sets attributes no checkpoint holds"
        if self.file_roundtrip:
            return (
                f"the main loop writes files that {self.file_roundtrip} reads back; no "
                "checkpoint holds files"
            )
        return None


def flor_loop_call(iterable: cst.BaseExpression) -> cst.Call | None:
    """The `flor.loop(...)` call a for statement iterates, also through any call that wraps
    it: enumerate()/zip(), and progress bars and other wrappers (`tqdm(flor.loop(...))`)."""
    if is_flor_call(iterable, "loop"):
        assert isinstance(iterable, cst.Call)
        return iterable
    if isinstance(iterable, cst.Call):
        for arg in iterable.args:
            found = flor_loop_call(arg.value)
            if found is not None:
                return found
    return None


def _base_name(node: cst.BaseExpression) -> str | None:
    while isinstance(node, (cst.Attribute, cst.Subscript, cst.Call)):
        node = node.func if isinstance(node, cst.Call) else node.value
    return node.value if isinstance(node, cst.Name) else None


def _target_names(node: cst.BaseExpression) -> list[str]:
    if isinstance(node, cst.Name):
        return [node.value]
    if isinstance(node, (cst.Tuple, cst.List)):
        return [n for e in node.elements for n in _target_names(e.value)]
    if isinstance(node, cst.StarredElement):
        return _target_names(node.value)
    return []


@dataclass
class _Helper:
    params: list[str]
    globals_written: set[str]
    mutates_params: bool
    attribute_stores: bool
    # it (or a module-level function it calls) draws random numbers
    draws_random: bool = False


class _Events(cst.CSTVisitor):
    """Uses of names in textual order: ("read" | "bind" | "mutate", name, definite)."""

    def __init__(
        self,
        helpers: dict[str, _Helper],
        exempt: set[str],
        opaque: dict[str, tuple[str, str | None]] | None = None,
        project: dict[str, ProjectModule | None] | None = None,
    ) -> None:
        self.helpers = helpers
        self.exempt = exempt
        self.opaque = opaque or {}
        self.project = project or {}
        self.events: list[tuple[str, str, bool]] = []
        self.conditional = 0
        self.attribute_stores = False
        self.breaks = False
        self.loop_depth = 0
        # `model.train()` / `model.eval()`: the mode lives outside every state_dict, so a
        # module whose mode the loop sets is carried if an iteration calls it (`model(x)`)
        # before it sets the mode, unless each iteration ends it in train mode again
        self.mode_set: set[str] = set()
        self.sets_mode_first: dict[str, bool] = {}
        self.ends_in_train: dict[str, bool] = {}
        # instances of the script's classes whose __call__/forward changes the instance
        # (a torchmetrics-style metric accumulating on `metric(pred, y)`)
        self.stateful: set[str] = set()

    def _add(self, kind: str, name: str | None) -> None:
        if name is not None and name not in self.exempt:
            self.events.append((kind, name, self.conditional == 0))

    # -- control flow: writes inside these may not happen -----------------------------------

    def _enter(self, node: cst.CSTNode) -> None:
        self.conditional += 1

    def _leave(self, node: cst.CSTNode) -> None:
        self.conditional -= 1

    visit_If = visit_Try = visit_IfExp = _enter
    leave_If = leave_Try = leave_IfExp = _leave  # type: ignore[assignment]

    def visit_While(self, node: cst.While) -> None:
        self.conditional += 1
        self.loop_depth += 1

    def leave_While(self, node: cst.While) -> None:
        self.conditional -= 1
        self.loop_depth -= 1

    visit_BooleanOperation = _enter
    leave_BooleanOperation = _leave  # type: ignore[assignment]

    def visit_For(self, node: cst.For) -> bool:
        node.iter.visit(self)
        is_flor = flor_loop_call(node.iter) is not None
        # a nested flor.loop runs its body (its data is not empty); a plain loop may not
        self.loop_depth += 1
        if not is_flor:
            self.conditional += 1
        for name in _target_names(node.target):
            self._add("bind", name)
        node.body.visit(self)
        if node.orelse is not None:
            node.orelse.visit(self)
        self.loop_depth -= 1
        if not is_flor:
            self.conditional -= 1
        return False

    def visit_Break(self, node: cst.Break) -> None:
        if self.loop_depth == 0:
            self.breaks = True

    def visit_Return(self, node: cst.Return) -> None:
        self.breaks = True

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_CompFor(self, node: cst.CompFor) -> bool:
        node.iter.visit(self)
        for cond in node.ifs:
            cond.visit(self)
        if node.inner_for_in is not None:
            node.inner_for_in.visit(self)
        return False

    # -- reads and writes ------------------------------------------------------------------

    def visit_Name(self, node: cst.Name) -> None:
        self._add("read", node.value)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        node.value.visit(self)
        return False

    def _store(self, target: cst.BaseExpression) -> None:
        if isinstance(target, (cst.Name, cst.Tuple, cst.List, cst.StarredElement)):
            for name in _target_names(target):
                self._add("bind", name)
            for element in getattr(target, "elements", ()):
                if not isinstance(element.value, cst.Name):
                    self._store(element.value)
            return
        if isinstance(target, cst.Attribute):
            self.attribute_stores = True
        target.visit(self)
        self._add("mutate", _base_name(target))

    def visit_Assign(self, node: cst.Assign) -> bool:
        node.value.visit(self)
        for target in node.targets:
            self._store(target.target)
        return False

    def visit_AnnAssign(self, node: cst.AnnAssign) -> bool:
        if node.value is not None:
            node.value.visit(self)
            self._store(node.target)
        return False

    def visit_AugAssign(self, node: cst.AugAssign) -> bool:
        node.value.visit(self)
        node.target.visit(self)  # reads it first
        self._store(node.target)
        return False

    def visit_NamedExpr(self, node: cst.NamedExpr) -> bool:
        node.value.visit(self)
        self.conditional += 1
        self._store(node.target)
        self.conditional -= 1
        return False

    def visit_WithItem(self, node: cst.WithItem) -> bool:
        node.item.visit(self)
        if node.asname is not None:
            self._store(node.asname.name)
        return False

    def visit_Del(self, node: cst.Del) -> bool:
        for name in _target_names(node.target):
            self._add("bind", name)
        return False

    def visit_Call(self, node: cst.Call) -> bool:
        if is_flor_call(node, "log"):
            for arg in node.args[1:]:
                arg.value.visit(self)
            return False
        func = node.func
        if (
            isinstance(func, cst.Attribute)
            and func.attr.value in ("train", "eval")
            and isinstance(func.value, cst.Name)
        ):
            name, definite = func.value.value, self.conditional == 0
            self.mode_set.add(name)
            self.sets_mode_first.setdefault(name, definite)
            to_train = func.attr.value == "train" and not node.args
            if definite or not to_train:
                self.ends_in_train[name] = definite and to_train
        elif isinstance(func, cst.Name):
            self.sets_mode_first.setdefault(func.value, False)  # a forward pass
            if func.value in self.stateful:
                self._add("mutate", func.value)
        node.func.visit(self)
        for arg in node.args:
            arg.value.visit(self)
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method not in _READ_ONLY_METHODS:
                self._add("mutate", _base_name(func.value))
            callee = method
        elif isinstance(func, cst.Name):
            callee = func.value
            helper = self.helpers.get(callee)
            if helper is not None:
                for name in helper.globals_written:
                    self._add("mutate", name)
                self.attribute_stores |= helper.attribute_stores
                if helper.mutates_params:
                    for arg in node.args:
                        self._add("mutate", _base_name(arg.value))
        else:
            callee = ""
        if _base_name(func) in self.opaque:
            # project code in another module: assume it changes what it is given, and
            # whatever module-level state of its own it writes (a step counter, a history)
            for arg in node.args:
                self._add("mutate", _base_name(arg.value))
            for name in self._project_state(func):
                self._add("mutate", name)
        elif (callee.endswith("_") or callee in _MUTATING_CALLS) and node.args:
            # in-place functions change their first argument (shuffle(x), clip_grad_norm_(p))
            self._add("mutate", _base_name(node.args[0].value))
        return False

    def _project_state(self, func: cst.BaseExpression) -> list[str]:
        """The module-level state of a project module that calling `func` may change, as
        `module.name` (`module.*` when its code could not be analysed)."""
        base = _base_name(func)
        assert base is not None
        module_name, function = self.opaque[base]
        if (
            function is None
            and isinstance(func, cst.Attribute)
            and isinstance(func.value, cst.Name)
        ):
            function = func.attr.value  # `engine.train_one_epoch(...)`
        analysed = self.project.get(module_name)
        if analysed is None or function is None:
            return [f"{module_name}.*"]
        if function in analysed.classes:
            return []  # a new instance: what the loop does to it, it does by name
        helper = analysed.helpers.get(function)
        if helper is None:
            return [f"{module_name}.*"]  # defined elsewhere and imported into it
        self.attribute_stores |= helper.attribute_stores
        return sorted(f"{module_name}.{g}" for g in helper.globals_written - analysed.exempt)


@dataclass
class ProjectModule:
    """What the analysis sees of a project module the script imports (`engine.py`)."""

    helpers: dict[str, _Helper]
    exempt: set[str]  # its imports, functions and classes: not state
    classes: set[str]
    public: set[str]  # its top-level functions and classes (what `import *` binds)
    loops: frozenset[str]  # its functions that run a flor.loop
    functions: dict[str, list[cst.FunctionDef]]


def project_modules(sources: dict[str, str | None]) -> dict[str, ProjectModule | None]:
    """The analysis of each project module from its source (None: not analysable)."""
    found: dict[str, ProjectModule | None] = {}
    for name, source in sources.items():
        try:
            module = cst.parse_module(source) if source is not None else None
        except cst.ParserSyntaxError:
            module = None
        if module is None:
            found[name] = None
            continue
        exempt, _ = _module_exempt(module, set(), set())
        classes = {c.name.value for c in module.body if isinstance(c, cst.ClassDef)}
        public = classes | {f.name.value for f in module.body if isinstance(f, cst.FunctionDef)}
        found[name] = ProjectModule(
            _helpers(module), exempt, classes, public, loop_functions(module), _functions(module)
        )
    return found


def _functions(module: cst.Module) -> dict[str, list[cst.FunctionDef]]:
    """Every function, method and closure of a module by name (names may repeat)."""
    found: dict[str, list[cst.FunctionDef]] = {}

    class Functions(cst.CSTVisitor):
        def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
            found.setdefault(node.name.value, []).append(node)

    module.visit(Functions())
    return found


def _helpers(module: cst.Module) -> dict[str, _Helper]:
    """Module-level functions and their closures: what they write outside themselves,
    also through the module's other functions they call (`train_step()` calling a
    `bump()` that increments a global counter)."""
    functions = _module_functions_and_closures(module)
    found: dict[str, _Helper] = {}
    for _ in range(len(functions) + 1):  # until what callees write reaches every caller
        known = dict(found)
        found = {f.name.value: _helper(f, known) for f in functions}
        if found == known:
            break
    for helper in found.values():
        helper.globals_written -= set(found)
    return found


def _helper(statement: cst.FunctionDef, known: dict[str, _Helper]) -> _Helper:
    """What one function writes outside itself, given what the functions it calls do."""
    params = [p.name.value for p in statement.params.params]
    params += [p.name.value for p in statement.params.kwonly_params]
    declared = _global_declarations(statement)
    events = _Events(known, set())
    statement.body.visit(events)
    local = {n for kind, n, _ in events.events if kind == "bind"} - declared
    # a local bound to a part of an argument or global (`for g in opt.param_groups`)
    # is an alias: changing it changes what it came from
    roots = _alias_roots(statement.body, local)
    mutated = {
        root for kind, n, _ in events.events if kind == "mutate" for root in roots.get(n, {n})
    }
    bound = {n for kind, n, _ in events.events if kind == "bind"}
    callees = called_names(statement.body)
    return _Helper(
        params,
        (bound & declared) | (mutated - local - set(params)),
        bool(mutated & set(params)),
        events.attribute_stores,
        _draws_random(statement.body) or any(known[c].draws_random for c in callees & set(known)),
    )


def _module_functions_and_closures(module: cst.Module) -> list[cst.FunctionDef]:
    """Module-level functions and the functions defined inside them (a `train_step`
    closure in `main()` that changes `nonlocal` counters or its enclosing function's
    objects), which the main loop may call."""
    found: list[cst.FunctionDef] = []
    for statement in module.body:
        if isinstance(statement, cst.FunctionDef):
            found.append(statement)

            class Closures(cst.CSTVisitor):
                def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
                    found.append(node)

                def visit_ClassDef(self, node: cst.ClassDef) -> bool:
                    return False

            statement.body.visit(Closures())
    return found


def _draws_random(node: cst.CSTNode) -> bool:
    return any(word in cst.Module(body=[]).code_for_node(node) for word in _RNG_WORDS)


def called_names(node: cst.CSTNode) -> set[str]:
    """Names of the plain functions `node` calls (`f(x)`, not `x.f()`)."""
    names: set[str] = set()

    class Calls(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            if isinstance(call.func, cst.Name):
                names.add(call.func.value)

    node.visit(Calls())
    return names


def _alias_roots(body: cst.BaseSuite, local: set[str]) -> dict[str, set[str]]:
    """For each local name bound to an attribute, item, element or method result of another
    name (`g = opt.param_groups[0]`, `for p in model.parameters()`), the non-local names
    it may alias, through chains of locals. Conservative: `x = w.copy()` counts too."""
    direct: dict[str, set[str]] = {}

    def bind(target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name):
            return  # `f(y)` makes a new object (np.zeros_like(w) goes to np, an import)
        base = _base_name(value)
        if base:
            for name in _target_names(target):
                direct.setdefault(name, set()).add(base)

    class Binds(cst.CSTVisitor):
        def visit_Assign(self, node: cst.Assign) -> None:
            for target in node.targets:
                bind(target.target, node.value)

        def visit_For(self, node: cst.For) -> None:
            bind(node.target, node.iter)

        def visit_WithItem(self, node: cst.WithItem) -> None:
            if node.asname is not None:
                bind(node.asname.name, node.item)

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return False

    body.visit(Binds())
    roots: dict[str, set[str]] = {}
    for name in direct:
        seen, todo, found = {name}, [name], set()
        while todo:
            for base in direct.get(todo.pop(), ()):
                if base in local and base in direct:
                    if base not in seen:
                        seen.add(base)
                        todo.append(base)
                elif base not in local:
                    found.add(base)
        if found:
            roots[name] = found | {name}
    return roots


def _global_declarations(function: cst.FunctionDef) -> set[str]:
    declared: set[str] = set()

    class Globals(cst.CSTVisitor):
        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return node is function  # a closure's declarations are its own

        def visit_Global(self, node: cst.Global) -> None:
            declared.update(n.name.value for n in node.names)

        def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
            declared.update(n.name.value for n in node.names)

    function.visit(Globals())
    return declared


def _module_exempt(
    module: cst.Module,
    checkpointed: set[str],
    local_modules: set[str],
    project: dict[str, ProjectModule | None] | None = None,
) -> tuple[set[str], dict[str, tuple[str, str | None]]]:
    """Names a restore handles or that are not state (imports, functions, classes, the
    checkpointed objects, builtins' usual suspects), and the names imported from the
    project's own modules: each with its module, and the function it names (None for the
    module itself). `from engine import *` binds the functions and classes of an analysed
    module; one that is not analysed is listed as `*engine`."""
    exempt = set(checkpointed) | {"flor", "print", "len", "range", "enumerate", "zip"}
    opaque: dict[str, tuple[str, str | None]] = {}

    def star(name: str | None) -> None:
        analysed = (project or {}).get(name or "")
        if analysed is None:
            opaque[f"*{name}"] = (name or ".", None)
            return
        for bound in sorted(analysed.public):
            exempt.add(bound)
            opaque[bound] = (name or "", bound)

    class Definitions(cst.CSTVisitor):
        def visit_Import(self, node: cst.Import) -> None:
            for alias in node.names:
                asname = alias.asname
                if asname is not None and isinstance(asname.name, cst.Name):
                    bound = asname.name.value
                else:
                    bound = _dotted_root(alias.name)
                exempt.add(bound)
                root = _dotted_root(alias.name)
                if root in local_modules:
                    # `import pkg.engine as e` binds a submodule, which is not analysed
                    plain = asname is None or isinstance(alias.name, cst.Name)
                    opaque[bound] = (root if plain else _dotted(alias.name) or root, None)

        def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
            if node.module is None:
                return
            root = _dotted_root(node.module)
            if isinstance(node.names, cst.ImportStar):
                if node.relative or root in local_modules:
                    star(root if isinstance(node.module, cst.Name) else _dotted(node.module))
                return
            local = not node.relative and root in local_modules
            # `from pkg.sub import f` and relative imports: code that is not analysed
            source = (root if isinstance(node.module, cst.Name) and local else
                      "." * len(node.relative) + (_dotted(node.module) or root))  # fmt: skip
            for alias in node.names:
                asname = alias.asname
                if asname is not None and isinstance(asname.name, cst.Name):
                    bound = asname.name.value
                elif isinstance(alias.name, cst.Name):
                    bound = alias.name.value
                else:
                    continue
                exempt.add(bound)
                if local or node.relative:
                    name = alias.name.value if isinstance(alias.name, cst.Name) else None
                    opaque[bound] = (source, name)

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            exempt.add(node.name.value)
            return False

        def visit_ClassDef(self, node: cst.ClassDef) -> bool:
            exempt.add(node.name.value)
            return False

    module.visit(Definitions())
    return exempt, opaque


def _dotted_root(node: cst.BaseExpression) -> str:
    while isinstance(node, cst.Attribute):
        node = node.value
    return node.value if isinstance(node, cst.Name) else ""


def callee_name(node: cst.Call) -> str | None:
    """The name a call goes to: `f(...)` -> f, `self.fit(...)` / `trainer.fit(...)` -> fit."""
    if isinstance(node.func, cst.Name):
        return node.func.value
    if isinstance(node.func, cst.Attribute):
        return node.func.attr.value
    return None


def loop_functions(module: cst.Module) -> frozenset[str]:
    """Names of the functions and methods that run a `flor.loop`, themselves or through
    another such function: calling one from the main loop's body runs a nested loop (as
    `train(epoch)` does in the pytorch/examples layout). Matched by name, conservatively."""
    runs_loop: set[str] = set()
    calls: dict[str, set[str]] = {}

    class Functions(cst.CSTVisitor):
        def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
            name = node.name.value
            called = calls.setdefault(name, set())

            class Body(cst.CSTVisitor):
                def visit_For(self, loop: cst.For) -> None:
                    if flor_loop_call(loop.iter) is not None:
                        runs_loop.add(name)

                def visit_Call(self, call: cst.Call) -> None:
                    callee = callee_name(call)
                    if callee is not None:
                        called.add(callee)

            node.body.visit(Body())

    module.visit(Functions())
    changed = True
    while changed:
        changed = False
        for name, called in calls.items():
            if name not in runs_loop and called & runs_loop:
                runs_loop.add(name)
                changed = True
    return frozenset(runs_loop)


def project_view(
    module: cst.Module, local_modules: set[str], project: dict[str, ProjectModule | None]
) -> tuple[frozenset[str], dict[str, list[cst.FunctionDef]]]:
    """The names under which the script calls project-module functions that run a
    flor.loop (`engine.train_one_epoch(...)`, `from engine import train_one_epoch`), and
    every function the script can call by name: its own and those of its project modules."""
    _, opaque = _module_exempt(module, set(), local_modules, project)
    loops: set[str] = set()
    functions = _functions(module)
    for bound, (module_name, function) in opaque.items():
        analysed = project.get(module_name)
        if analysed is None:
            continue
        if function is None:
            loops |= analysed.loops
            for name, defs in analysed.functions.items():
                functions.setdefault(name, []).extend(defs)
        else:
            loops |= {bound} if function in analysed.loops else set()
            functions.setdefault(bound, []).extend(analysed.functions.get(function, []))
    return frozenset(loops), functions


def analyze(
    module: cst.Module,
    main: cst.For,
    checkpointed: set[str],
    local_modules: set[str],
    project: dict[str, ProjectModule | None] | None = None,
) -> Hazards:
    """The hazards of skipping work in `main`, the module's main loop; `local_modules` are
    the project's own importable modules, `project` their analyses (a module without one
    is opaque: calling it may change anything)."""
    project = project or {}
    exempt, opaque = _module_exempt(module, checkpointed, local_modules, project)
    helpers = _helpers(module)
    events = _Events(helpers, exempt, opaque, project)
    events.stateful = _stateful_instances(module)
    for name in _target_names(main.target):
        events._add("bind", name)
    main.body.visit(events)
    first: dict[str, tuple[str, bool]] = {}
    written: set[str] = set()
    for kind, name, definite in events.events:
        first.setdefault(name, (kind, definite))
        if kind != "read":
            written.add(name)
    carried = {n for n in written if first[n] != ("bind", True)}
    # a loader built with its own generator advances it whenever the loop iterates it
    owners = _generator_owners(module)
    for name in {n for _, n, _ in events.events} & owners.keys():
        carried |= owners[name] - checkpointed
    # a generator made before the loop and read in it continues where the last iteration
    # left it; a restore does not rewind it
    carried |= {n for n in _iterators(module) if first.get(n, ("bind", True)) != ("bind", True)}
    # `from utils import *` of a module flor could not read: any call may be into it
    carried |= {f"{m}.*" for bound, (m, _) in opaque.items() if bound.startswith("*")}
    # a module left in eval mode by one iteration trains in eval mode in the next
    carried |= {
        f"{n}.training"
        for n in events.mode_set
        if not events.sets_mode_first[n]
        and not events.ends_in_train[n]
        and first.get(n) != ("bind", True)
    }
    hazards = Hazards(
        carried=carried,
        attribute_stores=events.attribute_stores,
        breaks=events.breaks,
        loop_writes=written,
    )
    project_loops, functions = project_view(module, local_modules, project)
    hazards.after_nested_effects = _after_nested_effects(
        main,
        helpers,
        exempt,
        checkpointed,
        loop_functions(module) | project_loops,
        functions,
        events.stateful,
    )
    hazards.rebound = _rebound(main, checkpointed)
    hazards.file_roundtrip = _file_roundtrip(module, main)
    return hazards


# Calls that make an iterator: a one-pass object whose position is state.
_ITERATOR_CALLS = frozenset(
    {"iter", "map", "filter", "zip", "enumerate", "reversed", "cycle", "count", "islice",
     "chain", "repeat", "tee", "accumulate", "zip_longest", "starmap", "takewhile",
     "dropwhile", "compress", "groupby", "pairwise", "batched"}
)  # fmt: skip


def _iterators(module: cst.Module) -> set[str]:
    """Names the script binds to an iterator (a generator function's result, `iter(...)`,
    `itertools.cycle(loader)`, a generator expression)."""
    generators = {
        name
        for name, defs in _functions(module).items()
        if any(_yields(d) for d in defs)
    }  # fmt: skip
    found: set[str] = set()

    class Assigns(cst.CSTVisitor):
        def visit_Assign(self, node: cst.Assign) -> None:
            value = node.value
            makes = isinstance(value, cst.GeneratorExp) or (
                isinstance(value, cst.Call) and _makes_iterator(value.func, generators)
            )
            if makes:
                found.update(n for t in node.targets for n in _target_names(t.target))

    module.visit(Assigns())
    return found


def _stateful_instances(module: cst.Module) -> set[str]:
    """Names bound to instances of the script's classes whose `__call__` or `forward`
    stores on `self` (`self.total += ...`, `self.history.append(...)`): calling one
    changes it, though the call names no method."""
    classes: set[str] = set()

    class Classes(cst.CSTVisitor):
        def visit_ClassDef(self, node: cst.ClassDef) -> None:
            for method in getattr(node.body, "body", ()):
                called = isinstance(method, cst.FunctionDef) and method.name.value in (
                    "__call__",
                    "forward",
                )
                if called and _changes_self(method):
                    classes.add(node.name.value)

    module.visit(Classes())
    found: set[str] = set()

    class Instances(cst.CSTVisitor):
        def visit_Assign(self, node: cst.Assign) -> None:
            value = node.value
            if isinstance(value, cst.Call) and callee_name(value) in classes:
                found.update(n for t in node.targets for n in _target_names(t.target))

    if classes:
        module.visit(Instances())
    return found


def _changes_self(method: cst.FunctionDef) -> bool:
    events = _Events({}, set())
    method.body.visit(events)
    return events.attribute_stores or any(
        kind == "mutate" and name == "self" for kind, name, _ in events.events
    )


def _makes_iterator(func: cst.BaseExpression, generators: set[str]) -> bool:
    """`iter(...)`, `batches(...)` (a generator function), `itertools.cycle(...)`: not
    methods (`dataset.map(f)` of a datasets library makes a new dataset, not an iterator)."""
    if isinstance(func, cst.Name):
        return func.value in _ITERATOR_CALLS | generators
    return (
        isinstance(func, cst.Attribute)
        and isinstance(func.value, cst.Name)
        and func.value.value == "itertools"
    )


def _yields(function: cst.FunctionDef) -> bool:
    found = False

    class Yields(cst.CSTVisitor):
        def visit_Yield(self, node: cst.Yield) -> None:
            nonlocal found
            found = True

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return node is function

    function.visit(Yields())
    return found


# Calls that write files (`torch.save`, `np.savez`, `df.to_csv`, `json.dump`, a project's
# `save_checkpoint`, `open(path, "w")`) and that read them (`torch.load`, `np.load`,
# `pd.read_csv`, `open(path)`, `from_pretrained`, a project's `load_checkpoint`).
_WRITES_FILES = re.compile(
    r"\b\w*(?:save|dump(?!s\())\w*\(|\.to_(?:csv|parquet|json|pickle|hdf|feather)\(|\.write\(|"
    r"\bshutil\.(?:copy\w*|move)\(|\bos\.(?:rename|replace)\("
)
_READS_FILES = re.compile(
    r"\b(?:torch|np|numpy|pickle|joblib|json|yaml|pd|pandas|h5py|safetensors|cv2|imageio|"
    r"Image)\.\w*(?:load|read|open)\w*\(|\bopen\(|\bfrom_pretrained\(|\w*load_checkpoint\w*\(|"
    r"\bload_from_checkpoint\("
)


def _file_roundtrip(module: cst.Module, main: cst.For) -> str:
    """Where code reads files the main loop writes ("the main loop", "code after it"), or "".

    A restored checkpoint holds objects, not files: a task that skips iterations (or the
    whole loop) finds on disk what the newest recorded run left there, not this run's."""
    functions = {f.name.value: f for f in module.body if isinstance(f, cst.FunctionDef)}
    code = cst.Module(body=[]).code_for_node

    def text_of(nodes: list[cst.CSTNode]) -> str:
        reached: set[str] = set()
        todo = [c for n in nodes for c in called_names(n) if c in functions]
        while todo:
            name = todo.pop()
            if name not in reached:
                reached.add(name)
                todo.extend(c for c in called_names(functions[name].body) if c in functions)
        return "\n".join([*(code(n) for n in nodes), *(code(functions[f]) for f in reached)])

    loop_text = text_of([main.body])
    if not _WRITES_FILES.search(loop_text):
        return ""
    if _READS_FILES.search(loop_text):
        return "the main loop"
    if _READS_FILES.search(text_of(_code_after(module, main))):
        return "code after it"
    return ""


def _code_after(module: cst.Module, main: cst.For) -> list[cst.CSTNode]:
    """The module-level statements after the main loop (and after it inside its with)."""
    for index, statement in enumerate(module.body):
        if statement is main:
            return list(module.body[index + 1 :])
        inner = _statements_after(statement, main)
        if inner or _contains(statement, main):
            return inner + list(module.body[index + 1 :])
    return []


def _contains(node: cst.CSTNode, target: cst.CSTNode) -> bool:
    found = False

    class Finder(cst.CSTVisitor):
        def on_visit(self, visited: cst.CSTNode) -> bool:
            nonlocal found
            found = found or visited is target
            return not found

    node.visit(Finder())
    return found


# Keywords that hand an object a random generator it keeps and draws from
# (`DataLoader(..., generator=g)`, `RandomSampler(ds, generator=g)`, sklearn's
# `random_state=RandomState(0)`).
_GENERATOR_KEYWORDS = frozenset({"generator", "rng", "random_state", "random_generator"})


def _generator_owners(module: cst.Module) -> dict[str, set[str]]:
    """Objects that hold a named random generator, directly or through another such object
    (`sampler = RandomSampler(ds, generator=g)`, `loader = DataLoader(ds, sampler=sampler)`):
    using the object advances the generator, though the code never names it again."""
    assigns: list[tuple[list[str], cst.Call]] = []

    class Assigns(cst.CSTVisitor):
        def visit_Assign(self, node: cst.Assign) -> None:
            if isinstance(node.value, cst.Call):
                targets = [n for t in node.targets for n in _target_names(t.target)]
                assigns.append((targets, node.value))

    module.visit(Assigns())
    owners: dict[str, set[str]] = {}
    changed = True
    while changed:
        changed = False
        for targets, call in assigns:
            held: set[str] = set()
            for arg in call.args:
                if not isinstance(arg.value, cst.Name):
                    continue
                keyword = arg.keyword.value if arg.keyword is not None else ""
                if keyword in _GENERATOR_KEYWORDS:
                    held.add(arg.value.value)
                held |= owners.get(arg.value.value, set())
            for target in targets:
                if not held <= owners.get(target, set()):
                    owners.setdefault(target, set()).update(held)
                    changed = True
    return owners


def loop_writes(module: cst.Module, loop: cst.For) -> set[str]:
    """Names a (nested) loop binds or changes in place: assignments, and also calls that
    mutate (`losses.append(x)`, `metric.update(...)`, `acc.add_(...)`, the module's helper
    functions changing their arguments or globals)."""
    exempt, _ = _module_exempt(module, set(), set())  # imports, functions, classes
    events = _Events(_helpers(module), exempt)
    for name in _target_names(loop.target):
        events._add("bind", name)
    loop.body.visit(events)
    return {name for kind, name, _ in events.events if kind != "read"}


def _rebound(main: cst.For, checkpointed: set[str]) -> set[str]:
    """Checkpointed names the loop binds to another object (`optimizer = SGD(...)`).
    Augmented assignment is not one: on the mutable objects flor.checkpointing accepts,
    `w -= lr * grad` changes the object in place."""
    bound: set[str] = set()

    class Binds(cst.CSTVisitor):
        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            bound.update(_target_names(node.target))

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            if node.value is not None:
                bound.update(_target_names(node.target))

        def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
            bound.update(_target_names(node.target))

        def visit_For(self, node: cst.For) -> None:
            bound.update(_target_names(node.target))

        def visit_AsName(self, node: cst.AsName) -> None:
            bound.update(_target_names(node.name))

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return False

    main.body.visit(Binds())
    return bound & checkpointed


def _after_nested_effects(
    main: cst.For,
    helpers: dict[str, _Helper],
    exempt: set[str],
    checkpointed: set[str],
    loop_calls: frozenset[str],
    functions: dict[str, list[cst.FunctionDef]],
    stateful: set[str],
) -> bool:
    """Whether the code that runs after the iteration's first nested flor.loop ends (the
    rest of the body, of the statement holding the loop, and of a function that runs it,
    such as an `engine.train_one_epoch` stepping its scheduler after its step loop) may
    change checkpointed state or draw random numbers: running it again on the
    end-of-iteration state would apply it twice."""
    statements = _after_first_loop(list(getattr(main.body, "body", ())), loop_calls, functions)
    if statements is None:
        return False
    events = _Events(helpers, exempt - checkpointed)
    events.stateful = stateful
    local: set[str] = set()
    for statement in statements:
        if flor_loop_call(getattr(statement, "iter", None) or cst.Name("_")) is not None:
            continue  # a later nested loop is skipped the same way
        statement.visit(events)
    if events.attribute_stores:
        return True
    text = "".join(cst.Module(body=[]).code_for_node(s) for s in statements)
    if any(word in text for word in _RNG_WORDS):
        return True
    for kind, name, definite in events.events:
        if kind == "bind" and definite:
            local.add(name)
        elif kind == "mutate" and name not in local:
            return True
    # a call of a checkpointed object itself (a forward pass) may draw dropout masks
    calls = set().union(*(called_names(statement) for statement in statements))
    if any(c in helpers and helpers[c].draws_random for c in calls):
        return True  # even under no_grad: an evaluation on random batches
    return any(c in checkpointed or c in helpers for c in calls) and not _no_grad_only(statements)


def _after_first_loop(
    statements: list[cst.CSTNode],
    loop_calls: frozenset[str],
    functions: dict[str, list[cst.FunctionDef]],
    seen: frozenset[str] = frozenset(),
) -> list[cst.CSTNode] | None:
    """The statements that run after the first nested flor.loop among `statements` ends
    (None when none runs one): those after it, and inside the statement holding it the
    code after the loop; a plain loop around it runs all of its body again."""
    for index, statement in enumerate(statements):
        if not _runs_loop(statement, loop_calls):
            continue
        rest = list(statements[index + 1 :])
        if isinstance(statement, cst.For) and flor_loop_call(statement.iter) is not None:
            return rest
        inner: list[cst.CSTNode] = []
        repeats = isinstance(statement, (cst.For, cst.While))
        for block in _blocks(statement):
            tail = block if repeats else _after_first_loop(block, loop_calls, functions, seen)
            inner.extend(tail or [])
        for callee in sorted(_callees(statement) & loop_calls - seen):
            for function in functions.get(callee, []):
                body = list(getattr(function.body, "body", ()))
                tail = _after_first_loop(body, loop_calls, functions, seen | {callee})
                inner.extend(tail or [])
        return inner + rest
    return None


def _runs_loop(statement: cst.CSTNode, loop_calls: frozenset[str]) -> bool:
    class Finder(cst.CSTVisitor):
        found = False

        def visit_For(self, node: cst.For) -> None:
            if flor_loop_call(node.iter) is not None:
                self.found = True

        def visit_Call(self, node: cst.Call) -> None:
            if callee_name(node) in loop_calls:
                self.found = True

    finder = Finder()
    statement.visit(finder)
    return finder.found


def _blocks(statement: cst.CSTNode) -> list[list[cst.CSTNode]]:
    """The statement lists directly inside a compound statement (if/else, with, try...)."""
    found: list[list[cst.CSTNode]] = []

    class Blocks(cst.CSTVisitor):
        def visit_IndentedBlock(self, node: cst.IndentedBlock) -> bool:
            found.append(list(node.body))
            return False

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return False

    statement.visit(Blocks())
    return found


def _callees(node: cst.CSTNode) -> set[str]:
    names: set[str] = set()

    class Calls(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            name = callee_name(call)
            if name is not None:
                names.add(name)

    node.visit(Calls())
    return names


def _no_grad_only(statements: list[cst.CSTNode]) -> bool:
    """Forward passes under `torch.no_grad()` after `model.eval()` draw no random numbers."""
    text = "".join(cst.Module(body=[]).code_for_node(s) for s in statements)
    return ".eval()" in text and "no_grad" in text


def suffix_reads(module: cst.Module, main: cst.For) -> set[str]:
    """Names read by module-level statements after the main loop (and its enclosing with)."""
    reads: set[str] = set()
    after = False

    class Reads(cst.CSTVisitor):
        def visit_Name(self, node: cst.Name) -> None:
            reads.add(node.value)

    for statement in module.body:
        if after:
            statement.visit(Reads())
            continue
        contains = False

        class Finder(cst.CSTVisitor):
            def visit_For(self, node: cst.For) -> None:
                nonlocal contains
                contains = contains or node is main

        statement.visit(Finder())
        if contains:
            after = True
            # statements after the loop inside the same with block
            for inner in _statements_after(statement, main):
                inner.visit(Reads())
    return reads


def _statements_after(container: cst.CSTNode, main: cst.For) -> list[cst.CSTNode]:
    body = getattr(container, "body", None)
    statements = list(getattr(body, "body", ())) if body is not None else []
    for index, statement in enumerate(statements):
        if statement is main:
            return statements[index + 1 :]
        nested = _statements_after(statement, main)
        if nested:
            return nested + statements[index + 1 :]
    return []


def unreproducible(statement: str) -> str | None:
    """What a hindsight statement reads that no replay can reproduce, if anything."""
    for needle, what in UNREPRODUCIBLE:
        if needle in statement:
            return what
    call = _UNREPRODUCIBLE_CALLS.search(statement)
    return _CALL_KINDS[call.lastgroup or "clock"] if call is not None else None


def volatile(expression: str) -> bool:
    """Whether a recorded statement logs something that varies between executions."""
    words = set(re.split(r"[^a-z0-9]+", expression.lower()))
    return not words.isdisjoint(_VOLATILE_WORDS)


def unseeded_draw(source: str) -> Callable[[str], str | None]:
    """For a script, a test of code text: what unseeded generator it draws from, if any
    (`random.random()` where the script never calls `random.seed(...)`, an unseeded
    `RandomState()`). A restore would give the recorded run's draw, a run from scratch
    another: neither is the value a user can check."""
    seeds_all = _SEEDS_ALL.search(source) is not None
    unseeded = []
    if not seeds_all and _SEEDS_PYTHON.search(source) is None:
        unseeded.append(_PYTHON_DRAW)
    if not seeds_all and _SEEDS_NUMPY.search(source) is None:
        unseeded.append(_NUMPY_DRAW)

    def draws(text: str) -> str | None:
        if _UNSEEDED_GENERATOR.search(text) or any(p.search(text) for p in unseeded):
            return "an unseeded RNG"
        return None

    return draws


def unreproducible_reads(source: str) -> Callable[[list[str]], tuple[str | None, str] | None]:
    """For a script, a test of statements (their `texts`): a name they read whose value the
    script computed from something no replay can reproduce (`elapsed = time.perf_counter() -
    t0`, `tag = uuid.uuid4().hex`, `rng = default_rng()` then `k = rng.integers(9)`), as
    (name, what), if any; (None, what) when a statement itself draws from an unseeded
    generator.

    Flow-insensitive and conservative: a name is tainted when any assignment anywhere in the
    script gives it a tainted value, including through in-place calls (`times.append(dt)`).
    `flor.arg(...)` values are recorded, so they are never tainted. The script is analysed
    once, on the first test that needs it."""
    draws = unseeded_draw(source)
    tainted: dict[str, str] | None = None

    def test(texts: list[str]) -> tuple[str | None, str] | None:
        nonlocal tainted
        for text in texts:
            what = draws(text)
            if what is not None:
                return None, what
        if tainted is None:
            tainted = _tainted_names(cst.parse_module(source), draws)
        if not tainted:
            return None
        for text in texts:
            for name in sorted(_reads_of(cst.parse_module(text))):
                if name in tainted:
                    return name, tainted[name]
        return None

    return test


def _dotted(node: cst.BaseExpression) -> str | None:
    """`a.b.c` as text when it is a chain of names, else None."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr.value}" if inner is not None else None
    return None


def _flow_targets(node: cst.BaseExpression) -> list[str]:
    if isinstance(node, (cst.Tuple, cst.List)):
        return [n for e in node.elements for n in _flow_targets(e.value)]
    if isinstance(node, cst.StarredElement):
        return _flow_targets(node.value)
    dotted = _dotted(node)
    if dotted is not None:
        return [dotted]
    base = _base_name(node)  # `times[i] = dt`: the container holds it
    return [base] if base is not None else []


def _reads_of(node: cst.CSTNode) -> set[str]:
    """Names and dotted names (`self.start`) an expression or statement reads."""
    found: set[str] = set()

    class Reads(cst.CSTVisitor):
        def visit_Name(self, name: cst.Name) -> None:
            found.add(name.value)

        def visit_Attribute(self, attr: cst.Attribute) -> None:
            dotted = _dotted(attr)
            if dotted is not None:
                found.add(dotted)

    node.visit(Reads())
    return found


def _tainted_names(module: cst.Module, draws: Callable[[str], str | None]) -> dict[str, str]:
    """Every name a script binds to a value derived from an unreproducible source."""
    flows: list[tuple[list[str], cst.CSTNode]] = []

    class Flows(cst.CSTVisitor):
        def add(self, targets: list[str], value: cst.CSTNode) -> None:
            if targets and not is_flor_call(value, "arg"):
                flows.append((targets, value))

        def visit_Assign(self, node: cst.Assign) -> None:
            self.add([n for t in node.targets for n in _flow_targets(t.target)], node.value)

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            self.add(_flow_targets(node.target), node.value)

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            if node.value is not None:
                self.add(_flow_targets(node.target), node.value)

        def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
            self.add(_flow_targets(node.target), node.value)

        def visit_For(self, node: cst.For) -> None:
            self.add(_flow_targets(node.target), node.iter)

        def visit_WithItem(self, node: cst.WithItem) -> None:
            if node.asname is not None:
                self.add(_flow_targets(node.asname.name), node.item)

        def visit_Call(self, node: cst.Call) -> None:
            # `times.append(time.time() - t0)`: the container now holds the value
            func = node.func
            if isinstance(func, cst.Attribute) and func.attr.value in _MUTATING_CALLS:
                base = _base_name(func.value)
                if base is not None:
                    for arg in node.args:
                        self.add([base], arg.value)

    module.visit(Flows())
    code = cst.Module(body=[]).code_for_node
    tainted: dict[str, str] = {}
    for targets, value in flows:
        what = unreproducible(code(value)) or draws(code(value))
        if what is not None:
            tainted.update(dict.fromkeys(targets, what))
    reads = [(targets, _reads_of(value)) for targets, value in flows]
    changed = True
    while changed:
        changed = False
        for targets, read in reads:
            source = next((tainted[n] for n in sorted(read) if n in tainted), None)
            for target in targets:
                if source is not None and target not in tainted:
                    tainted[target] = source
                    changed = True
    return tainted
