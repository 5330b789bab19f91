"""The PIN's life: issued, mailed only to admissible addresses, checked once,
expired by the clock, killed by brute force, rate-limited."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.identity import pin as pins
from apps.identity.models import PinDevice

pytestmark = pytest.mark.django_db


def _mailed_pin(address: str) -> str:
    sent = [m for m in mail.outbox if m.to == [address]]
    assert sent, f"no mail to {address}"
    found = re.search(r"\b(\d{6})\b", sent[-1].body)
    assert found is not None
    return found.group(1)


def _device(email: str) -> PinDevice:
    device = pins.find_device(email)
    assert device is not None
    return device


def test_send_pin_admissible_address_gets_mail_and_member(corp_app) -> None:  # type: ignore[no-untyped-def]
    pins.send_pin("ada@corp.example", "10.0.0.1")

    code = _mailed_pin("ada@corp.example")
    user = get_user_model().objects.get(username="ada@corp.example")
    assert not user.has_usable_password()
    assert not user.is_staff
    assert user.email == "ada@corp.example"
    assert code not in mail.outbox[-1].subject
    event = AuditEvent.objects.get(kind="pin_sent")
    assert event.client_ip == "10.0.0.1"
    assert code not in str(event.detail)


@pytest.mark.parametrize(
    "address",
    [
        "a@corp.example.evil",
        "a@notcorp.example",
        "a@sub.corp.example",
        "a@evil.example",
    ],
)
def test_send_pin_lookalike_domain_no_mail_no_member(corp_app, address: str) -> None:  # type: ignore[no-untyped-def]
    pins.send_pin(address, None)

    assert mail.outbox == []
    assert not get_user_model().objects.filter(username=address).exists()
    assert not AuditEvent.objects.filter(kind="pin_sent").exists()


def test_send_pin_no_applications_no_mail(db) -> None:  # type: ignore[no-untyped-def]
    pins.send_pin("ada@corp.example", None)

    assert mail.outbox == []


def test_send_pin_everyone_rule_admits_any_address(make_app) -> None:  # type: ignore[no-untyped-def]
    make_app("open", "open.localhost", include=[("everyone", "")])

    pins.send_pin("someone@anywhere.example", None)

    assert len(mail.outbox) == 1


def test_send_pin_block_policy_include_does_not_admit(make_app) -> None:  # type: ignore[no-untyped-def]
    make_app("b", "b.localhost", include=[("everyone", "")], action="block")

    pins.send_pin("someone@anywhere.example", None)

    assert mail.outbox == []


def test_send_pin_staff_account_not_mailed(corp_app) -> None:  # type: ignore[no-untyped-def]
    get_user_model().objects.create_user(
        "boss@corp.example", "boss@corp.example", "pw-0123456789", is_staff=True
    )

    pins.send_pin("boss@corp.example", None)

    assert mail.outbox == []
    assert not PinDevice.objects.exists()


def test_check_pin_right_code_works_once(corp_app) -> None:  # type: ignore[no-untyped-def]
    pins.send_pin("ada@corp.example", None)
    code = _mailed_pin("ada@corp.example")

    assert pins.check_pin(_device("ada@corp.example"), code) is pins.PinCheck.OK
    assert pins.check_pin(_device("ada@corp.example"), code) is pins.PinCheck.NO_PIN


def test_check_pin_after_ten_minutes_expired(corp_app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    start = timezone.now()
    monkeypatch.setattr(pins, "now", lambda: start)
    pins.send_pin("ada@corp.example", None)
    code = _mailed_pin("ada@corp.example")

    monkeypatch.setattr(pins, "now", lambda: start + timedelta(minutes=10))

    assert pins.check_pin(_device("ada@corp.example"), code) is pins.PinCheck.EXPIRED


def test_check_pin_just_before_expiry_works(corp_app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    start = timezone.now()
    monkeypatch.setattr(pins, "now", lambda: start)
    pins.send_pin("ada@corp.example", None)
    code = _mailed_pin("ada@corp.example")

    monkeypatch.setattr(pins, "now", lambda: start + timedelta(minutes=9, seconds=59))

    assert pins.check_pin(_device("ada@corp.example"), code) is pins.PinCheck.OK


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_check_pin_five_wrong_tries_kill_the_code(corp_app) -> None:  # type: ignore[no-untyped-def]
    pins.send_pin("ada@corp.example", None)
    code = _mailed_pin("ada@corp.example")
    device = _device("ada@corp.example")

    results = [pins.check_pin(device, _wrong(code)) for _ in range(5)]

    assert results[:4] == [pins.PinCheck.WRONG] * 4
    assert results[4] is pins.PinCheck.EXHAUSTED
    assert pins.check_pin(device, code) is pins.PinCheck.EXHAUSTED


def test_check_pin_four_wrong_tries_then_right_works(corp_app) -> None:  # type: ignore[no-untyped-def]
    pins.send_pin("ada@corp.example", None)
    code = _mailed_pin("ada@corp.example")
    device = _device("ada@corp.example")

    for _ in range(4):
        pins.check_pin(device, _wrong(code))

    assert pins.check_pin(device, code) is pins.PinCheck.OK


def test_check_pin_new_code_replaces_old(corp_app) -> None:  # type: ignore[no-untyped-def]
    pins.send_pin("ada@corp.example", None)
    first = _mailed_pin("ada@corp.example")
    pins.send_pin("ada@corp.example", None)
    second = _mailed_pin("ada@corp.example")
    if first == second:
        pytest.skip("the two random codes happened to be equal")

    assert pins.check_pin(_device("ada@corp.example"), first) is pins.PinCheck.WRONG
    assert pins.check_pin(_device("ada@corp.example"), second) is pins.PinCheck.OK


def test_pin_device_stored_hash_is_not_the_code(corp_app) -> None:  # type: ignore[no-untyped-def]
    pins.send_pin("ada@corp.example", None)
    code = _mailed_pin("ada@corp.example")

    device = _device("ada@corp.example")
    assert code not in device.pin_hash
    assert device.confirmed is False


def test_request_pin_queues_same_job_for_any_address(corp_app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    queued: list[object] = []
    monkeypatch.setattr(pins.background, "submit", queued.append)

    pins.request_pin("ada@corp.example", "10.0.0.1")
    pins.request_pin("stranger@evil.example", "10.0.0.1")

    # Nothing was decided on the request path: no member, no mail yet.
    assert len(queued) == 2
    assert mail.outbox == []
    assert not get_user_model().objects.exists()


def test_request_pin_sixth_for_one_address_limited(corp_app, inline_jobs) -> None:  # type: ignore[no-untyped-def]
    for i in range(5):
        pins.request_pin("ada@corp.example", f"10.0.0.{i}")

    with pytest.raises(pins.SendLimited):
        pins.request_pin("ADA@corp.example".lower(), "10.0.0.99")
    assert len(mail.outbox) == 5


def test_request_pin_many_addresses_from_one_client_limited(
    corp_app, inline_jobs
) -> None:  # type: ignore[no-untyped-def]
    for i in range(30):
        pins.request_pin(f"u{i}@evil.example", "10.0.0.7")

    with pytest.raises(pins.SendLimited):
        pins.request_pin("ada@corp.example", "10.0.0.7")
    pins.request_pin("ada@corp.example", "10.0.0.8")
    assert len(mail.outbox) == 1
