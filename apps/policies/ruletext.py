"""Rules as text: one rule a line, ``<kind> <selector> [value]``.

The admin edits a policy's rules in one textarea (Django has no nested
inlines), and ``apply_config`` checks rules of policies that do not exist yet.
Both go through ``check_rule`` so they raise the same errors as
``Rule.clean``.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError

from apps.policies.models import (
    Policy,
    Rule,
    check_action_selector,
    normalise_rule_value,
)

RuleTuple = tuple[str, str, str]


def check_rule(action: str, kind: str, selector: str, value: str | None) -> str:
    """Validate one rule of a policy with ``action``; return its value."""
    if kind not in Rule.Kind.values:
        raise ValidationError(
            {"kind": f"unknown rule kind {kind!r} (include, require or exclude)"}
        )
    normalised = normalise_rule_value(selector, value)
    check_action_selector(action, kind, selector)
    return normalised


def error_text(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(str(m) for m in ValidationError(errs).messages)}"
            for field, errs in error.error_dict.items()
        )
    return " ".join(error.messages)


def parse_rule_lines(action: str, text: str) -> list[RuleTuple]:
    """Parse and check every line; report all bad lines at once."""
    rules: list[RuleTuple] = []
    problems: list[str] = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) not in (2, 3):
            problems.append(
                f"line {number}: write '<include|require|exclude> <selector> [value]'"
            )
            continue
        kind, selector = words[0].lower(), words[1].lower()
        value = words[2] if len(words) == 3 else ""
        try:
            value = check_rule(action, kind, selector, value)
        except ValidationError as exc:
            problems.append(f"line {number}: {error_text(exc)}")
            continue
        rule = (kind, selector, value)
        if rule in rules:
            problems.append(f"line {number}: this rule is listed twice")
            continue
        rules.append(rule)
    if problems:
        raise ValidationError(problems)
    return rules


def format_rules(rules: Iterable[RuleTuple]) -> str:
    order = {kind: n for n, kind in enumerate(Rule.Kind.values)}
    lines = [
        " ".join(part for part in rule if part)
        for rule in sorted(rules, key=lambda r: (order.get(r[0], 9), r[1], r[2]))
    ]
    return "\n".join(lines)


def rule_tuples(policy: Policy) -> list[RuleTuple]:
    return [(r.kind, r.selector, r.value) for r in policy.rules.all()]


def replace_rules(policy: Policy, rules: list[RuleTuple]) -> bool:
    """Make the policy's rules exactly ``rules``; True if any changed."""
    current = set(rule_tuples(policy))
    wanted = set(rules)
    if current == wanted:
        return False
    stale = current - wanted
    for rule in policy.rules.all():
        if (rule.kind, rule.selector, rule.value) in stale:
            rule.delete()
    for kind, selector, value in sorted(wanted - current):
        Rule.objects.create(policy=policy, kind=kind, selector=selector, value=value)
    return True
