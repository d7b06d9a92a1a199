"""Button data: the strings already on people's screens still decode, and nothing over
Telegram's 64 bytes is ever built."""

from __future__ import annotations

import pytest

from handlers.callbacks import (
    LIMIT,
    Callback,
    CallbackTooLong,
    ConsentButton,
    CorrectField,
    DeleteData,
    DossierButton,
    DossierOfficial,
    EditReturned,
    FlowButton,
    LanguageButton,
    MenuButton,
    Renew,
    ReviewDecision,
    ReviewList,
    ReviewShow,
    unpack,
)

# Strings the bot sent before these classes existed, exactly as they were built then.
SENT_BEFORE = [
    ("m:new", MenuButton("new")),
    ("m:reeval", MenuButton("reeval")),
    ("lang:en", LanguageButton("en")),
    ("pe:42", EditReturned(42)),
    ("rvl", ReviewList()),
    ("rvs:7", ReviewShow(7)),
    ("rv:acc:7", ReviewDecision("acc", 7)),
    ("rv:defer:12", ReviewDecision("defer", 12)),
    ("rf:7", CorrectField(7)),
    ("rr:315", Renew(315)),
    ("dz:r", DossierButton("r")),
    ("dz:c:DP-2026-0007", DossierButton("c", ("DP-2026-0007",))),
    ("dz:i:7:nhan", DossierButton("i", ("7", "nhan"))),
    ("dzo:t:7:attp", DossierOfficial("t", ("7", "attp"))),
    ("cs:y:pe:42", ConsentButton("y", ("pe", "42"))),
    ("cs:n", ConsentButton("n")),
    ("dd:ask", DeleteData("ask")),
]


@pytest.mark.parametrize(("data", "button"), SENT_BEFORE)
def test_buttons_sent_before_decode_and_encode_the_same(data: str, button: Callback) -> None:
    assert type(button).decode(data) == button
    assert button.encode() == data


@pytest.mark.parametrize(
    ("data", "button"),
    [
        ("5:b", FlowButton(5, "b")),
        ("12:ok", FlowButton(12, "ok")),
        ("3:o:21439", FlowButton(3, "o", "21439")),
        ("3:o:", FlowButton(3, "o", "")),
        ("9:e:owner_name", FlowButton(9, "e", "owner_name")),
    ],
)
def test_form_buttons_sent_before_decode_and_encode_the_same(data: str, button: FlowButton) -> None:
    assert FlowButton.decode(data) == button
    assert button.encode() == data


def test_the_consent_button_carries_the_button_to_run_after_it() -> None:
    agreed = ConsentButton.decode(ConsentButton.agree("rr:315").encode())
    assert agreed is not None and agreed.resume == ("rr", "315")
    assert unpack(":".join(agreed.resume)) == ("rr", ("315",))


@pytest.mark.parametrize(
    "data",
    ["pe:abc", "pe", "pe:1:2", "rv:acc", "rr:", "m:new:extra", "x:5", "rvl:1"],
)
def test_malformed_or_forged_data_decodes_to_nothing(data: str) -> None:
    prefixes = (EditReturned, ReviewDecision, Renew, MenuButton, ReviewList)
    assert all(cls.decode(data) is None for cls in prefixes if unpack(data)[0] == cls.prefix)
    assert FlowButton.decode(data) is None


def test_a_button_over_64_bytes_is_refused_when_built() -> None:
    fits = "a" * (LIMIT - len("dz:c:"))
    assert len(DossierButton("c", (fits,)).encode().encode()) == LIMIT
    with pytest.raises(CallbackTooLong):
        DossierButton("c", (fits + "a",)).encode()
    # Bytes, not characters: Vietnamese letters take two or three.
    with pytest.raises(CallbackTooLong):
        FlowButton(1, "o", "Đức Phổ" * 6).encode()
