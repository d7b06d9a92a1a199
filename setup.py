"""Package layout only (metadata lives in pyproject.toml): the migrations and the catalogs stay
where the repository keeps them (migrations/, locales/) and ship inside the packages that read
them, as bot/migrations and handlers/locales, so an installed bot finds them wherever it is.

All package data is declared here: a [tool.setuptools.package-data] table in pyproject.toml would
replace this one, and the wheel would ship without its migrations and catalogs."""

from pathlib import Path

from setuptools import find_packages, setup

RESOURCES = {"bot.migrations": "migrations", "handlers.locales": "locales"}
# Each language's folder is a package of data (setuptools wants every folder it ships named).
CATALOGS = [
    f"handlers.locales.{folder.parent.name}.LC_MESSAGES"
    for folder in sorted(Path(__file__).parent.glob("locales/*/LC_MESSAGES"))
]

setup(
    packages=[
        *find_packages(include=["bot", "bot.*", "handlers", "handlers.*", "models", "models.*"]),
        *RESOURCES,
        "bot.migrations.versions",
        *(name.rsplit(".", 1)[0] for name in CATALOGS),
        *CATALOGS,
    ],
    package_dir=RESOURCES,
    package_data={
        "bot.migrations": ["script.py.mako"],
        "bot.sandbox": ["static/*"],  # the sandbox's web chat page, script and stylesheet
        "handlers": ["dossier_data/*"],  # the dossier checklist and the form template
        **{name: ["messages.po", "messages.mo"] for name in CATALOGS},
    },
)
