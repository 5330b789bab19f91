"""Configuration as code: applications, policies and rules from YAML.

``load_config`` reads and checks a whole file before anything is written;
``apply_config`` then brings the database in line with it inside one
transaction, so a bad file leaves the database as it was. Applications are
matched by slug and policies by name within their application; running the
same file twice changes nothing the second time. ``export_config`` writes the
same format back, in a stable order, so export, apply and export again give
the same text. Service tokens and signing keys are never part of the file.

An application field the file leaves out takes the model's default: the file
is the whole truth about the applications it lists.

Limitations: route clashes with applications that stay in the database are
checked against their current hosts, so moving a host from one listed
application to another in a single run is reported as a clash; apply it in
two runs (remove, then add).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NoReturn

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Field
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from apps.policies.durations import format_duration, parse_duration
from apps.policies.models import Application, Policy, Rule
from apps.policies.patterns import split_hosts
from apps.policies.ruletext import RuleTuple, check_rule, error_text, rule_tuples

logger = logging.getLogger(__name__)

APP_FIELDS = (
    "slug",
    "name",
    "hosts",
    "path",
    "upstream",
    "strip_prefix",
    "preserve_host",
    "session_duration",
    "audience",
    "identity_header",
    "launcher",
    "enabled",
    "ca_bundle",
    "connect_timeout",
    "read_timeout",
    "cors_mode",
    "cors_origins",
)
_APP_KEYS = set(APP_FIELDS) | {"policies"}
_REQUIRED_APP_KEYS = ("slug", "name", "hosts", "upstream")
_BOOL_FIELDS = {"strip_prefix", "preserve_host", "launcher", "enabled"}
_FLOAT_FIELDS = {"connect_timeout", "read_timeout"}
_LIST_FIELDS = {"hosts", "cors_origins"}
_POLICY_KEYS = {"name", "action", "precedence", "session_duration"} | set(
    Rule.Kind.values
)


class ConfigError(Exception):
    """A file that cannot be applied, with the line and field at fault."""

    def __init__(self, message: str, line: int | None = None, where: str = ""):
        self.message = message
        self.line = line
        self.where = where
        prefix = f"line {line}: " if line else ""
        location = f"{where}: " if where else ""
        super().__init__(f"{prefix}{location}{message}")


@dataclass
class PolicyConfig:
    name: str
    action: str
    precedence: int
    session_duration: timedelta | None
    rules: list[RuleTuple]


@dataclass
class AppConfig:
    slug: str
    values: dict[str, Any]
    policies: list[PolicyConfig] = field(default_factory=list)


@dataclass
class Plan:
    """What applying a file changes, as lines a person can read."""

    changes: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.changes


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _mapping(node: Node, where: str) -> dict[str, tuple[Node, Node]]:
    if not isinstance(node, MappingNode):
        raise ConfigError("expected a mapping (key: value)", _line(node), where)
    out: dict[str, tuple[Node, Node]] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            raise ConfigError("keys must be plain names", _line(key_node), where)
        key = str(key_node.value)
        if key in out:
            raise ConfigError(f"{key!r} is given twice", _line(key_node), where)
        out[key] = (key_node, value_node)
    return out


def _sequence(node: Node, where: str) -> list[Node]:
    if not isinstance(node, SequenceNode):
        raise ConfigError("expected a list", _line(node), where)
    return list(node.value)


class _Reader:
    """Turns YAML nodes into Python values, keeping their line numbers."""

    def __init__(self, text: str) -> None:
        self.loader = yaml.SafeLoader(text)

    def root(self) -> Node | None:
        try:
            return self.loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            raise ConfigError(f"not valid YAML: {exc.problem}", line) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"not valid YAML: {exc}") from None

    def value(self, node: Node) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise ConfigError(f"unreadable value: {exc}", _line(node)) from None


def _scalar(reader: _Reader, node: Node, where: str, kind: str) -> Any:
    if not isinstance(node, ScalarNode):
        raise ConfigError(f"expected {kind}", _line(node), where)
    value = reader.value(node)
    if kind == "text":
        if value is None or isinstance(value, bool | list | dict):
            raise ConfigError("expected text", _line(node), where)
        return str(value)
    if kind == "true/false":
        if not isinstance(value, bool):
            raise ConfigError("expected true or false", _line(node), where)
        return value
    if kind == "a number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError("expected a number", _line(node), where)
        return float(value)
    if kind == "a whole number":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError("expected a whole number", _line(node), where)
        return value
    if kind == "a duration":
        try:
            return parse_duration(value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(str(exc), _line(node), where) from None
    raise AssertionError(kind)


def _text_list(reader: _Reader, node: Node, where: str) -> list[str]:
    if isinstance(node, ScalarNode):
        return split_hosts(_scalar(reader, node, where, "text"))
    return [
        _scalar(reader, item, f"{where}[{n}]", "text")
        for n, item in enumerate(_sequence(node, where))
    ]


def _rule_value(reader: _Reader, node: Node, where: str) -> str:
    if not isinstance(node, ScalarNode):
        raise ConfigError("a rule's value is one piece of text", _line(node), where)
    value = reader.value(node)
    if value is None or value is True:
        # ``{everyone: true}``: selectors without a value.
        return ""
    if value is False:
        raise ConfigError(
            "a rule cannot be switched off; remove it", _line(node), where
        )
    return str(value)


def _read_rules(
    reader: _Reader, action: str, kind: str, node: Node, where: str
) -> list[RuleTuple]:
    rules: list[RuleTuple] = []
    for n, item in enumerate(_sequence(node, where)):
        here = f"{where}[{n}]"
        if isinstance(item, ScalarNode):
            # A bare selector name (``- everyone``) for valueless selectors.
            selector, raw = str(item.value), ""
            value_node: Node = item
        else:
            entries = _mapping(item, here)
            if len(entries) != 1:
                raise ConfigError(
                    "a rule is one 'selector: value' pair", _line(item), here
                )
            selector, (_, value_node) = next(iter(entries.items()))
            raw = _rule_value(reader, value_node, f"{here}.{selector}")
        try:
            rules.append((kind, selector, check_rule(action, kind, selector, raw)))
        except ValidationError as exc:
            raise ConfigError(
                error_text(exc), _line(value_node), f"{here}.{selector}"
            ) from None
    return rules


def _read_policy(reader: _Reader, node: Node, where: str) -> PolicyConfig:
    entries = _mapping(node, where)
    for key, (key_node, _) in entries.items():
        if key not in _POLICY_KEYS:
            raise ConfigError(
                f"unknown key {key!r} (allowed: {', '.join(sorted(_POLICY_KEYS))})",
                _line(key_node),
                f"{where}.{key}",
            )
    for key in ("name", "action"):
        if key not in entries:
            raise ConfigError(f"{key!r} is required", _line(node), f"{where}.{key}")
    name = _scalar(reader, entries["name"][1], f"{where}.name", "text").strip()
    action_node = entries["action"][1]
    action = _scalar(reader, action_node, f"{where}.action", "text")
    if action not in Policy.Action.values:
        raise ConfigError(
            f"unknown action {action!r} (allow, block, bypass or service_auth)",
            _line(action_node),
            f"{where}.action",
        )
    precedence = 100
    if "precedence" in entries:
        precedence = _scalar(
            reader, entries["precedence"][1], f"{where}.precedence", "a whole number"
        )
    duration = None
    if "session_duration" in entries:
        duration = _scalar(
            reader,
            entries["session_duration"][1],
            f"{where}.session_duration",
            "a duration",
        )
    rules: list[RuleTuple] = []
    for kind in Rule.Kind.values:
        if kind in entries:
            rules += _read_rules(
                reader, action, kind, entries[kind][1], f"{where}.{kind}"
            )
    policy = Policy(name=name, action=action, precedence=precedence)
    policy.session_duration = duration
    try:
        policy.full_clean(exclude=["application"], validate_unique=False)
    except ValidationError as exc:
        _raise_field_error(exc, entries, node, where)
    if len(set(rules)) != len(rules):
        raise ConfigError("a rule is listed twice", _line(node), where)
    return PolicyConfig(policy.name, action, precedence, duration, rules)


def _raise_field_error(
    exc: ValidationError,
    entries: dict[str, tuple[Node, Node]],
    node: Node,
    where: str,
) -> NoReturn:
    error_dict = exc.error_dict if hasattr(exc, "error_dict") else {"": [exc]}
    name, errors = next(iter(error_dict.items()))
    message = " ".join(ValidationError(errors).messages)
    if name in entries:
        line = _line(entries[name][1])
    else:
        line = _line(node)
    raise ConfigError(message, line, f"{where}.{name}" if name else where)


def _read_app(
    reader: _Reader, node: Node, where: str
) -> tuple[AppConfig, Application, dict[str, tuple[Node, Node]]]:
    entries = _mapping(node, where)
    for key, (key_node, _) in entries.items():
        if key not in _APP_KEYS:
            raise ConfigError(f"unknown key {key!r}", _line(key_node), f"{where}.{key}")
    for key in _REQUIRED_APP_KEYS:
        if key not in entries:
            raise ConfigError(f"{key!r} is required", _line(node), f"{where}.{key}")
    slug = _scalar(reader, entries["slug"][1], f"{where}.slug", "text").strip()
    if slug:
        # Name the application by slug from here on: easier to find than [n].
        where = f"applications[{slug}]"
    values: dict[str, Any] = {}
    for key in APP_FIELDS:
        if key not in entries:
            continue
        value_node = entries[key][1]
        here = f"{where}.{key}"
        if key in _LIST_FIELDS:
            values[key] = "\n".join(_text_list(reader, value_node, here))
        elif key in _BOOL_FIELDS:
            values[key] = _scalar(reader, value_node, here, "true/false")
        elif key in _FLOAT_FIELDS:
            values[key] = _scalar(reader, value_node, here, "a number")
        elif key == "session_duration":
            values[key] = _scalar(reader, value_node, here, "a duration")
        else:
            values[key] = _scalar(reader, value_node, here, "text").strip()

    existing = Application.objects.filter(slug=slug).first()
    candidate = Application(pk=existing.pk if existing else None)
    # Tell the unique checks this row exists, so it is not its own duplicate.
    candidate._state.adding = existing is None
    for key, default in _app_defaults().items():
        setattr(candidate, key, values.get(key, default))
    try:
        candidate.full_clean()
    except ValidationError as exc:
        _raise_field_error(exc, entries, node, where)

    config = AppConfig(slug=slug, values=_app_values(candidate))
    if "policies" in entries:
        seen: set[str] = set()
        for n, item in enumerate(_sequence(entries["policies"][1], where)):
            policy = _read_policy(reader, item, f"{where}.policies[{n}]")
            if policy.name in seen:
                raise ConfigError(
                    f"policy {policy.name!r} is listed twice",
                    _line(item),
                    f"{where}.policies[{n}].name",
                )
            seen.add(policy.name)
            config.policies.append(policy)
    return config, candidate, entries


def _app_defaults() -> dict[str, Any]:
    out = {}
    for name in APP_FIELDS:
        model_field = Application._meta.get_field(name)
        assert isinstance(model_field, Field)
        out[name] = model_field.get_default()
    return out


def _app_values(app: Application) -> dict[str, Any]:
    return {name: getattr(app, name) for name in APP_FIELDS}


def load_config(text: str) -> list[AppConfig]:
    """Check a whole file; raise ``ConfigError`` at the first fault."""
    reader = _Reader(text)
    root = reader.root()
    if root is None:
        raise ConfigError("the file is empty; it needs 'applications:'", 1)
    entries = _mapping(root, "")
    for key, (key_node, _) in entries.items():
        if key != "applications":
            raise ConfigError(f"unknown key {key!r}", _line(key_node), key)
    if "applications" not in entries:
        raise ConfigError("'applications' is required", _line(root), "applications")
    apps: list[AppConfig] = []
    routes: dict[tuple[str, str], str] = {}
    for n, item in enumerate(_sequence(entries["applications"][1], "applications")):
        config, candidate, app_entries = _read_app(reader, item, f"applications[{n}]")
        if any(a.slug == config.slug for a in apps):
            raise ConfigError(
                f"application {config.slug!r} is listed twice",
                _line(app_entries["slug"][1]),
                f"applications[{n}].slug",
            )
        for host in candidate.host_list:
            route = (host, candidate.path)
            if route in routes:
                raise ConfigError(
                    f"host {host} with path {candidate.path or '/'} is also used "
                    f"by application {routes[route]!r}",
                    _line(app_entries["hosts"][1]),
                    f"applications[{config.slug}].hosts",
                )
            routes[route] = config.slug
        apps.append(config)
    return apps


def _app_changes(app: Application, wanted: dict[str, Any]) -> list[str]:
    return [name for name in APP_FIELDS if getattr(app, name) != wanted[name]]


def plan_and_apply(
    apps: list[AppConfig], *, prune: bool, dry_run: bool, actor: str, source: str
) -> Plan:
    """Bring the database in line with ``apps`` in one transaction."""
    from apps.audit.service import record_event

    plan = Plan()
    with transaction.atomic():
        listed = {a.slug for a in apps}
        if prune:
            for stale in Application.objects.exclude(slug__in=listed).order_by("slug"):
                plan.changes.append(f"delete application {stale.slug}")
                stale.delete()
        for config in apps:
            _apply_app(config, plan, prune)
        if not plan.is_empty and not dry_run:
            record_event(
                "config_applied",
                actor=actor,
                outcome="ok",
                detail={"source": source, "changes": plan.changes},
            )
        if dry_run:
            transaction.set_rollback(True)
    if not plan.is_empty and not dry_run:
        logger.info(
            "configuration applied from %s: %d changes", source, len(plan.changes)
        )
    return plan


def _apply_app(config: AppConfig, plan: Plan, prune: bool) -> None:
    app = Application.objects.filter(slug=config.slug).first()
    if app is None:
        app = Application(**config.values)
        app.full_clean()
        app.save()
        plan.changes.append(f"create application {config.slug}")
    else:
        changed = _app_changes(app, config.values)
        if changed:
            for name in changed:
                setattr(app, name, config.values[name])
            app.full_clean()
            app.save()
            plan.changes.append(
                f"update application {config.slug}: {', '.join(changed)}"
            )
    existing = {p.name: p for p in app.policies.prefetch_related("rules")}
    for wanted in config.policies:
        _apply_policy(app, existing.pop(wanted.name, None), wanted, plan)
    if prune:
        for name in sorted(existing):
            plan.changes.append(f"delete policy {config.slug}/{name}")
            existing[name].delete()


def _apply_policy(
    app: Application, policy: Policy | None, wanted: PolicyConfig, plan: Plan
) -> None:
    from apps.policies.ruletext import replace_rules

    label = f"{app.slug}/{wanted.name}"
    if policy is None:
        policy = Policy(application=app, name=wanted.name)
        verb = "create"
        changed = ["action", "precedence", "session_duration", "rules"]
    else:
        verb = "update"
        changed = [
            name
            for name in ("action", "precedence", "session_duration")
            if getattr(policy, name) != getattr(wanted, name)
        ]
        if set(rule_tuples(policy)) != set(wanted.rules):
            changed.append("rules")
    if not changed:
        return
    policy.action = wanted.action
    policy.precedence = wanted.precedence
    policy.session_duration = wanted.session_duration
    policy.full_clean()
    policy.save()
    replace_rules(policy, wanted.rules)
    plan.changes.append(
        f"create policy {label}"
        if verb == "create"
        else f"update policy {label}: {', '.join(changed)}"
    )


def apply_config(
    text: str,
    *,
    prune: bool = False,
    dry_run: bool = False,
    actor: str = "",
    source: str = "",
) -> Plan:
    """Check the whole file, then apply it; nothing is written on error."""
    apps = load_config(text)
    try:
        return plan_and_apply(
            apps, prune=prune, dry_run=dry_run, actor=actor, source=source
        )
    except ValidationError as exc:
        # Checked up front already; this catches what only the database knows
        # (say, a clash with an application the same run renames).
        raise ConfigError(error_text(exc)) from None


class _Flow(list):  # type: ignore[type-arg]
    """A list written inline, like ``[a.example, b.example]``."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Flow,
    lambda dumper, data: dumper.represent_sequence(
        "tag:yaml.org,2002:seq", data, flow_style=True
    ),
)


def _export_app(app: Application) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in APP_FIELDS:
        value = getattr(app, name)
        if name == "hosts":
            value = _Flow(app.host_list)
        elif name == "cors_origins":
            value = _Flow(split_hosts(value))
        elif name == "session_duration":
            value = format_duration(value)
        out[name] = value
    policies = []
    for policy in sorted(app.policies.all(), key=lambda p: (p.precedence, p.name)):
        item: dict[str, Any] = {
            "name": policy.name,
            "action": policy.action,
            "precedence": policy.precedence,
        }
        if policy.session_duration is not None:
            item["session_duration"] = format_duration(policy.session_duration)
        rules = sorted(rule_tuples(policy))
        for kind in Rule.Kind.values:
            chosen = [
                {selector: value if value else True}
                for k, selector, value in rules
                if k == kind
            ]
            if chosen:
                item[kind] = _Flow(chosen)
        policies.append(item)
    out["policies"] = policies
    return out


def export_config() -> str:
    """The database's applications, policies and rules as a config file."""
    apps = Application.objects.order_by("slug").prefetch_related("policies__rules")
    document = {"applications": [_export_app(app) for app in apps]}
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=88,
    )
