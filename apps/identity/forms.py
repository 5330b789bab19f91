"""The sign-in forms. Values are normalised here; nothing else trusts raw
input."""

from __future__ import annotations

import re

from django import forms

from apps.identity.emails import MAX_LENGTH, normalise_email

_PIN_RE = re.compile(r"^[0-9]{6}$")
_SIX_DIGITS = "The code is six digits, as in the mail."


_ONE_ADDRESS = "Enter one e-mail address, like name@example.com."


class EmailForm(forms.Form):
    email = forms.CharField(
        max_length=MAX_LENGTH + 64,
        strip=False,
        error_messages={"required": _ONE_ADDRESS, "max_length": _ONE_ADDRESS},
    )
    next = forms.CharField(required=False, max_length=8192, strip=False)

    def clean_email(self) -> str:
        email = normalise_email(self.cleaned_data.get("email"))
        if email is None:
            raise forms.ValidationError(_ONE_ADDRESS, code="invalid_email")
        return email


class PinForm(EmailForm):
    pin = forms.CharField(
        max_length=32, strip=False, error_messages={"required": _SIX_DIGITS}
    )

    def clean_pin(self) -> str:
        # People paste codes with spaces or a hyphen in the middle.
        pin = re.sub(r"[\s-]", "", self.cleaned_data.get("pin", ""))
        if not _PIN_RE.match(pin):
            raise forms.ValidationError(_SIX_DIGITS, code="invalid_pin")
        return pin
