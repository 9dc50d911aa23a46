"""Make moto and botocore cheap to set up and reset in tests, without changing what any AWS call answers.

Measured on this suite (cProfile, docs/benchmarks.md "Suite speed"): a plain `mock_aws` test spent 2-3 s
before its first assertion and as long again after it, almost all of it in moto building backends that no
test looks at:

* every request asks IAM which account its access key belongs to, and moto answers by creating the IAM
  backend of *every* partition (aws, aws-cn, aws-us-gov, aws-iso, ...), each loading ~1,300 AWS managed
  policies when `MOTO_IAM_LOAD_MANAGED_POLICIES` is on (the sandbox needs them);
* every EC2 backend (one per region used) loads ~1,300 AMIs (the 44 base ones plus the region's "latest"
  and ECS-optimised lists), each with a volume and a snapshot;
* a reset (`mock_aws` enter *and* exit, both) first re-creates every existing backend in place, policies
  and AMIs included, and then throws them all away;
* each new IAM backend (the first IAM call after every reset: the sandbox tests reset before each test)
  parses moto's ~1,600 AWS managed policies from one JSON string and dumps each document back to JSON;
* moto's EKS builds a boto3 Session on every CreateCluster/CreateNodegroup only to list partitions;
* `mock_aws` gives boto3 a new default session, so every test parsed botocore's service models (the EC2
  one alone is megabytes of JSON) again for its first `boto3.client(...)`;
* every command (in-process, as the tests run them) starts botocore's event-name translation cache empty:
  it is kept per emitter, and each session and client has its own;
* moto's server lists its package folder on disk (~200 `isdir` calls) to route each request, and
  introspects the response class (`inspect.getmembers`) to find each action: a quarter of the sandbox's
  CPU per request;
* moto's KMS generates an RSA-2048 key pair for every key it creates, symmetric ones included (used only by
  Sign, Verify and GetPublicKey, which no test calls on a symmetric key): 40-100 ms per `up`;
* typer's test runner builds the whole click command tree from the app's type hints on every invocation
  (~0.1 s: `inspect.signature` and `typing.get_type_hints` for every option of every command);
* botocore makes a new service model for every client, and with it recomputes what it caches per model
  (the endpoint-discovery scan of every operation, ~600 for EC2, the error shapes);
* every client copies its session's event handlers (botocore's prefix trie of ~400 registrations), node by
  node through `copy.copy`: about 60 % of making a client, ~90 ms for the 14 clients a `status` makes;
* botocore builds a new client class (a method and a lazy docstring per operation: ~600 for EC2) for every
  client it makes, and every in-process command makes its clients anew: 6-7 % of an in-process `up`.

`apply()` removes that waste, once per test process (each xdist worker), before moto's EC2 models are
imported. Nothing here is an AWS behaviour: each replacement returns what moto's own code returns.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

_applied = False

# The status-poll pace every test gives eksprivate (EKSPRIVATE_POLL_INTERVAL). At the tests' time scale
# (x 0.0005: cluster 0.27 s, node group 0.09 s, endpoint 0.045 s) AWS's own 15 s pace would be 0.0075 s;
# 0.03 s polls a cluster 9 times and a node group about 3 times. Every poll is a call that both eksprivate and
# the sandbox pay CPU for, and nothing a test asserts depends on how often a wait looks, only on what it sees.
POLL_INTERVAL = "0.03"


def apply() -> None:
    global _applied
    if _applied:
        return
    _applied = True
    _few_default_amis()
    _account_lookup_on_existing_partitions()
    _reset_without_rebuilding()
    _managed_policy_data_parsed_once()
    _eks_partitions_listed_once()
    _one_botocore_loader_per_data_path()
    _event_aliases_resolved_once()
    _cheaper_moto_request_routing()
    _client_classes_made_once()
    _kms_key_pairs_made_when_used()
    _service_models_made_once()
    _typer_commands_built_once()
    _event_handlers_copied_directly()


def cache_bytecode() -> None:
    """Keep compiled bytecode between test processes when the environment forbids writing it next to the
    sources (`PYTHONDONTWRITEBYTECODE`, as on this project's shared machines): in a folder of this user's
    under the temp directory instead (`sys.pycache_prefix`, Python's own setting), for this process and the
    ones it starts. Without it every process compiled eksprivate again and pytest rewrote every test
    module's asserts again: each xdist worker, each sandbox process and `eksprivate` child a test starts.
    Measured: `pytest --collect-only` 2.8 -> 1.5 CPU s. Call it before eksprivate is imported. A folder that
    is not this user's alone is not used (a planted .pyc would run as this user)."""
    import stat
    import sys

    if not sys.dont_write_bytecode or sys.pycache_prefix:
        return
    prefix = Path(tempfile.gettempdir()) / f"eksprivate-tests-pycache-{os.getuid()}"
    try:
        prefix.mkdir(mode=0o700, exist_ok=True)
        info = prefix.lstat()
    except OSError:
        return
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return
    sys.pycache_prefix = str(prefix)
    sys.dont_write_bytecode = False
    os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def collect_garbage_less_often() -> None:
    """A test process holds moto's backends, botocore's parsed models and a sandbox's threads: a large heap
    that Python's cyclic collector scanned whole every few hundred thousand allocations. Measured with
    `gc.callbacks` on tests/test_operator.py and tests/test_cost_images.py: 10.9 s of 76 CPU s in the
    collector; with these thresholds 4.2 s of 65. Reference counting still frees almost everything at once;
    only cycles wait longer."""
    import gc

    gc.set_threshold(20_000, 20, 1_000)


def freeze_what_lasts(resets: int) -> None:
    """Keep the collector from scanning what lives as long as the process: modules, botocore's models,
    moto's classes and tables. Right after a sandbox reset almost everything alive is that; `gc.freeze()`
    moves it out of the collector's sight, so a full collection scans only what tests made since (measured on
    in-process `up`s: a full collection 0.24 s before, 0.02 s after). Done at the 1st, 2nd, 4th, 8th, ... reset,
    as the lasting heap grows while models load on first use, after a collection so no garbage is frozen."""
    import gc

    if resets & (resets - 1) == 0:
        gc.collect()
        gc.freeze()


def _few_default_amis() -> None:
    """Only moto's 44 base AMIs (all `amazon`-owned, in every region), not the ~1,250 regional "latest" and
    ECS-optimised ones: no test picks an image by name. `MOTO_AMIS_PATH` is moto's own setting, read when
    `moto.ec2.models.amis` is first imported; child processes (a sandbox started by a test) inherit it."""
    if "MOTO_AMIS_PATH" in os.environ:
        return
    import moto
    from moto.utilities.utils import load_resource_as_bytes

    target = Path(tempfile.gettempdir()) / f"eksprivate-tests-moto-{moto.__version__}-amis.json"
    if not target.exists():
        # Two xdist workers may get here together: each writes its own file and renames it into place.
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(gzip.decompress(load_resource_as_bytes("ec2/resources/amis.json.gz")))
        os.replace(partial, target)
    os.environ["MOTO_AMIS_PATH"] = str(target)


def _account_lookup_on_existing_partitions() -> None:
    """moto's `get_account_id_from` looks for the access key in the IAM backend of every partition and so
    creates them all; a backend that does not exist yet holds no access key, so skipping it gives the same
    answer."""
    from moto.core.base_backend import AccountSpecificBackend
    from moto.iam import models as iam_models

    def get_account_id_from(access_key: str) -> str:
        for account_id, account in list(iam_models.iam_backends.items()):
            for partition in iam_models.PARTITION_NAMES:
                # dict.get: the backend dict's own [] would create the partition's backend.
                backend = dict.get(account, partition)
                if backend is not None and access_key in backend.access_keys:
                    return account_id
        return str(iam_models.DEFAULT_ACCOUNT_ID)

    assert issubclass(AccountSpecificBackend, dict)
    iam_models.get_account_id_from = get_account_id_from


def _reset_without_rebuilding() -> None:
    """moto's reset re-runs every backend's `__init__` in place (for code that kept a reference to a
    backend: moto issue #6592) and then drops them all from its registry, so the next call builds new ones
    anyway. Nothing in eksprivate or these tests keeps such a reference (each looks backends up per call):
    dropping them is enough."""
    from moto.core.base_backend import BackendDict, backend_lock

    def reset(cls: type[Any]) -> None:
        with backend_lock:
            registry: list[Any] = BackendDict._instances
            for backend in registry:
                backend.clear()
            registry.clear()

    BackendDict.reset = classmethod(reset)


def _managed_policy_data_parsed_once() -> None:
    """moto builds a new IAM backend's AWS managed policies from its JSON data, parsing it whole and dumping
    each policy document back to a string, every time. Parse it once; every backend still gets new policy
    objects (they count their attachments), made with the same arguments moto's `from_data` passes: the first
    backend of an account builds them, later ones (after each reset) get copies with their own counters, tags
    and versions (building 1,600 policies cost ~30 ms per reset, copying them ~5 ms)."""
    import functools
    import json
    from datetime import datetime

    from moto.iam import models as iam_models

    @functools.cache  # built whole, then shared: backends made side by side never see a half-filled list
    def prepared() -> tuple[tuple[str, dict[str, Any]], ...]:
        return tuple((name, {
            "default_version_id": data.get("DefaultVersionId"),
            "path": data.get("Path"),
            "document": json.dumps(data.get("Document")),
            "create_date": datetime.fromisoformat(data["CreateDate"]),
            "update_date": datetime.fromisoformat(data["UpdateDate"]),
        }) for name, data in json.loads(iam_models.aws_managed_policies_data).items())

    made: dict[tuple[str, str], list[Any]] = {}

    def init_aws_policies(self: Any) -> list[Any]:
        if not iam_models.load_iam_aws_managed_policies():
            return []
        key = (self.account_id, self.region_name)
        if key not in made:
            policy = iam_models.AWSManagedPolicy
            made[key] = [policy(name, account_id=self.account_id, region=self.region_name, **args)
                         for name, args in prepared()]
        return [fresh(p) for p in made[key]]

    def copied(template: Any) -> Any:  # copy.copy's generic path (__reduce_ex__) costs 10x this
        twin = object.__new__(type(template))
        twin.__dict__.update(template.__dict__)
        return twin

    def fresh(template: Any) -> Any:
        # What the constructor would make again: the same fields, its own counters, tags and versions.
        policy = copied(template)
        policy.tags = {}
        policy.versions = [copied(v) for v in template.versions]
        return policy

    iam_models.IAMBackend._init_aws_policies = init_aws_policies


def _eks_partitions_listed_once() -> None:
    """moto's EKS validates a role ARN's partition against `boto3.Session().get_available_partitions()`,
    building a Session (~0.1 s) per CreateCluster/CreateNodegroup; the list is the same every time."""
    import boto3
    from moto.eks import utils as eks_utils

    partitions = tuple(boto3.session.Session().get_available_partitions())

    class Partitions:
        def get_available_partitions(self) -> list[str]:
            return list(partitions)

    eks_utils.Session = Partitions


def _one_botocore_loader_per_data_path() -> None:
    """Every botocore session in the process gets the same data loader for the same AWS_DATA_PATH, so each
    service model is parsed once per process (what `eksprivate.aws` does for its own sessions). The loader
    only reads files and keeps what it parsed: sharing it changes no model."""
    import threading

    import botocore.loaders
    import botocore.session

    create_loader = botocore.loaders.create_loader
    loaders: dict[str | None, botocore.loaders.Loader] = {}
    lock = threading.Lock()

    def shared_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
        with lock:
            if search_path_string not in loaders:
                loaders[search_path_string] = create_loader(search_path_string)
            return loaders[search_path_string]

    botocore.session.create_loader = shared_loader  # the name the session's data_loader factory calls


def _event_aliases_resolved_once() -> None:
    """botocore translates every event name it emits through its table of renamed services, and caches the
    answer in the emitter: a session's and each client's own copy, so every command started with empty
    caches (each AWS call emits ~15 events). The answer depends only on the name and the table: emitters with
    the same table share one cache."""
    from botocore import hooks

    caches: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    init = hooks.EventAliaser.__init__

    def __init__(self: hooks.EventAliaser, event_emitter: Any, event_aliases: Any = None) -> None:
        init(self, event_emitter, event_aliases)
        self._alias_name_cache = caches.setdefault(tuple(sorted(self._event_aliases.items())), {})

    hooks.EventAliaser.__init__ = __init__


def _cheaper_moto_request_routing() -> None:
    """The same routing answers without the per-request disk listing and class introspection."""
    import inspect

    from moto import backends
    from moto.core import responses

    modules = tuple(backends.list_of_moto_modules())  # moto's installed package folders: fixed while we run
    backends.list_of_moto_modules = lambda: iter(modules)

    class MethodNames:
        """`action in method_names_from_class(cls)`, asked of the class as it is now (the sandbox adds and
        removes handlers when it installs and uninstalls), without listing all of its members."""

        def __init__(self, cls: type[Any]) -> None:
            self.cls = cls

        def __contains__(self, name: object) -> bool:
            return isinstance(name, str) and inspect.isfunction(getattr(self.cls, name, None))

    responses.method_names_from_class = MethodNames  # only `call_action`'s `in` test uses this name


def _answered_once(owner: type[Any], method: str, key: Callable[..., Hashable]) -> None:
    """Replace `owner.method` by one that calls the original once per `key(self, *args)` and gives every
    later caller with the same key that first answer (thread-safe)."""
    import threading

    answers: dict[Hashable, Any] = {}
    lock = threading.Lock()
    original = getattr(owner, method)

    def answered(self: Any, *args: Any) -> Any:
        k = key(self, *args)
        with lock:
            if k not in answers:
                answers[k] = original(self, *args)
            return answers[k]

    setattr(owner, method, answered)


def _client_classes_made_once() -> None:
    """One client class per service and API version for the whole process. The class holds only what the
    service model and the `creating-client-class` handlers give it: each operation's method (a closure over
    the operation's names) and the mixins boto3 adds. Every session here registers the same handlers (boto3's
    and botocore's defaults; no test or eksprivate code listens to that event), so the class made for the
    first client of a service is the class botocore would make for every later one. Instances, and with them
    each client's events, config and endpoint, are still made per client."""
    from botocore.client import ClientCreator

    _answered_once(ClientCreator, "_create_client_class",
                   lambda _, service_name, service_model: (service_name, service_model.api_version))


def _kms_key_pairs_made_when_used() -> None:
    """moto makes each KMS key's asymmetric key pair in its constructor; here it is made on first use (Sign,
    Verify, GetPublicKey), by moto's own function, for the key spec it would have used."""
    from moto.kms import models as kms_models

    generate = kms_models.generate_private_key

    class KeyPairWhenUsed:
        def __init__(self, key_spec: str) -> None:
            self._key_spec = key_spec
            self._made: Any = None

        def __getattr__(self, name: str) -> Any:
            if self._made is None:
                self._made = generate(self._key_spec)
            return getattr(self._made, name)

    kms_models.generate_private_key = KeyPairWhenUsed


def _service_models_made_once() -> None:
    """One botocore ServiceModel per loader, service and API version: the loader already shares the parsed
    JSON (botocore's own `instance_cache`), and a ServiceModel is a read-only view of it whose cached
    properties (operation models, error shapes, the endpoint-discovery operation) are then computed once."""
    from botocore.client import ClientCreator

    _answered_once(ClientCreator, "_load_service_model",
                   lambda self, service_name, api_version=None: (id(self._loader), service_name, api_version))


def _typer_commands_built_once() -> None:
    """typer.testing.CliRunner.invoke builds the click command from the Typer app each time; a click command
    keeps no state between invocations (each gets a new click Context), so one is built per app."""
    from typer import testing

    built: dict[int, Any] = {}
    get_command = testing._get_command

    def command_of(app: Any) -> Any:
        if id(app) not in built:
            built[id(app)] = (app, get_command(app))  # the app is kept so its id is not reused
        return built[id(app)][1]

    testing._get_command = command_of


def _event_handlers_copied_directly() -> None:
    """botocore's `_PrefixTrie._recursive_copy` with the same result (each node dict copied, each NodeList's
    three lists copied, handlers shared) but without `copy.copy`'s generic dispatch per node."""
    from botocore import hooks

    node_list = hooks.NodeList

    def recursive_copy(self: Any, node: dict[str, Any]) -> dict[str, Any]:
        copied: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(value, node_list):
                copied[key] = node_list(value.first.copy(), value.middle.copy(), value.last.copy())
            elif isinstance(value, dict):
                copied[key] = recursive_copy(self, value)
            else:
                copied[key] = value
        return copied

    hooks._PrefixTrie._recursive_copy = recursive_copy
