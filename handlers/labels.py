"""Catalog strings for the domain enums, so every label a user sees is translatable."""

from __future__ import annotations

from handlers.i18n import N_, _
from models.domain import ProductGroup, RegistrationKind, RegistrationStatus, SubjectType, Target

KIND = {
    RegistrationKind.NEW: N_("New product"),
    RegistrationKind.REEVALUATION: N_("Re-evaluation of an expiring product"),
    RegistrationKind.UPGRADE: N_("Upgrade to a higher star"),
}

TARGET = {
    Target.STAR3: N_("3 stars"),
    Target.STAR4: N_("4 stars"),
    Target.STAR5: N_("5 stars"),
    Target.UP_3_TO_4: N_("Upgrade from 3 to 4 stars"),
    Target.UP_4_TO_5: N_("Upgrade from 4 to 5 stars"),
}

GROUP = {
    ProductGroup.FOOD: N_("Food"),
    ProductGroup.BEVERAGE: N_("Beverages"),
    ProductGroup.HERBAL: N_("Medicinal herbs and herbal products"),
    ProductGroup.HANDICRAFT: N_("Handicrafts and fine arts"),
    ProductGroup.ORNAMENTAL: N_("Ornamental plants and animals"),
    ProductGroup.TOURISM: N_("Community tourism, eco-tourism and tourist sites"),
}

SUBJECT_TYPE = {
    SubjectType.ENTERPRISE: N_("Enterprise"),
    SubjectType.COOPERATIVE: N_("Cooperative"),
    SubjectType.COOPERATIVE_GROUP: N_("Cooperative group"),
    SubjectType.HOUSEHOLD: N_("Registered household business"),
}

STATUS = {
    RegistrationStatus.SUBMITTED: N_("Submitted, waiting for review"),
    RegistrationStatus.ACCEPTED: N_("Accepted, sent to evaluation"),
    RegistrationStatus.RETURNED: N_("Returned for completion"),
    RegistrationStatus.REJECTED: N_("Rejected"),
    RegistrationStatus.CERTIFIED: N_("Certified"),
    RegistrationStatus.FAILED: N_("Not certified"),
    RegistrationStatus.DEFERRED: N_("Moved to next year"),
    RegistrationStatus.WITHDRAWN: N_("Withdrawn by the producer"),
}

YES, NO = N_("Yes"), N_("No")
# Typed words that mean yes or no, comma-separated (matched without diacritics).
YES_WORDS = N_("yes, ok, sure, agree")
NO_WORDS = N_("no, not, nope")
# Words for "I don't know" (the certificate date) and "skip" (the location).
DONT_KNOW_WORDS = N_("don't know, do not know, not sure, forgot, no idea")
SKIP_WORDS = N_("skip, no, later, not now")

# Other names a producer may type for a subject type or a registration kind.
SUBJECT_TYPE_WORDS = {
    SubjectType.ENTERPRISE: N_("company, business, firm"),
    SubjectType.COOPERATIVE: N_("coop, cooperative"),
    SubjectType.COOPERATIVE_GROUP: N_("group, cooperative group"),
    SubjectType.HOUSEHOLD: N_("household, family, individual"),
}
KIND_WORDS = {
    RegistrationKind.NEW: N_("new, register new"),
    RegistrationKind.REEVALUATION: N_("re-evaluate, reevaluation, renew, expiring, expired"),
    RegistrationKind.UPGRADE: N_("upgrade, higher star, more stars"),
}

# A registration's fields (models.registrations.RegistrationInput names) as the form labels
# them: what a resubmission changed, what an official corrects.
FIELD = {
    "kind": N_("Registration"),
    "target": N_("Target"),
    "commune_code": N_("Commune"),
    "commune_input": N_("Commune"),
    "legacy_commune": N_("Commune"),
    "product_name": N_("Product"),
    "product_group": N_("Product group"),
    "subject_type": N_("Producer type"),
    "subject_name": N_("Producer name"),
    "owner_name": N_("Legal representative"),
    "address": N_("Production address"),
    "phone": N_("Phone"),
    "latitude": N_("Location"),
    "longitude": N_("Location"),
    "ecommerce": N_("Sold online"),
    "current_star": N_("Current star"),
    "certificate_issue_date": N_("Certificate issued"),
}


def fields(names: list[str]) -> str:
    """Field names as their labels, each once, in the form's order."""
    labels = [_(FIELD[name]) for name in FIELD if name in names]
    return ", ".join(dict.fromkeys(labels))


def stars(count: int) -> str:
    return _("{count} stars").format(count=count)


# A decision on the personal-data notice, as /mydata lists it.
CONSENT_DECISION = {
    "granted": N_("agreed"),
    "refused": N_("did not agree"),
    "withdrawn": N_("withdrawn"),
}
