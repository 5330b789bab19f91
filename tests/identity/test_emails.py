import pytest

from apps.identity.emails import normalise_email


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ada@Corp.Example", "ada@corp.example"),
        ("  ada@corp.example\n", "ada@corp.example"),
        ("\tADA.Lovelace+tag@corp.example ", "ada.lovelace+tag@corp.example"),
    ],
)
def test_normalise_email_case_and_space_normalised(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "ada",
        "ada@",
        "@corp.example",
        "a@evil@corp.example",
        "ada@corp.example, eve@evil.example",
        "ada@corp.example eve@evil.example",
        "Ada <ada@corp.example>",
        '"ada"@corp.example',
        "ada@corp..example",
        "ada@-corp.example",
        "ada..x@corp.example",
        "ada@corp.example\neve@evil.example",
        "a" * 65 + "@corp.example",
        "ada@" + "a" * 250 + ".example",
    ],
)
def test_normalise_email_not_one_address_refused(raw: str) -> None:
    assert normalise_email(raw) is None
