"""The web chat's own words, from the catalogs like every other text of the bot."""

from __future__ import annotations

from bot.sandbox.personas import PERSONAS
from handlers.i18n import N_, _

TEXTS = {
    "title": N_("OCOP bot sandbox"),
    "banner": N_(
        "Sandbox: a copy of the OCOP bot running on this computer. Nothing is sent to Telegram "
        "or Zalo; the people and their data are samples."
    ),
    "reset": N_("Reset the sandbox"),
    "reset_confirm": N_(
        "Start over with an empty database? Every chat and registration in the sandbox is deleted."
    ),
    "resetting": N_("Starting over…"),
    "connecting": N_("Connecting…"),
    "start": N_("Start"),
    "placeholder": N_("Message"),
    "send": N_("Send"),
    "sample": N_("Import the sample certificate list"),
    "download": N_("Download"),
    "zalo_note": N_("Zalo has no buttons: answer with the number of an option."),
    "not_sent": N_("Could not send. Please try again."),
    "bot_name": N_("OCOP bot"),
    "people": N_("Who are you?"),
}


def page_texts() -> dict[str, str]:
    """Every text of the page in the current language; persona descriptions as persona.<key>."""
    texts = {key: _(message) for key, message in TEXTS.items()}
    texts |= {f"persona.{persona.key}": _(persona.about) for persona in PERSONAS}
    return texts
