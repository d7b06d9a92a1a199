"""The dossier's parts without a bot: the checklist file, content sniffing, the stores (a local
folder; an S3-compatible server when one is configured) and the form filled from a template."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import docx
import pytest

from handlers.checklist import SHIPPED, ChecklistError, load_checklist, parse_checklist
from handlers.context import Services
from handlers.dossier_form import registration_form
from models.admin_units import Area
from models.domain import ProductGroup, RegistrationKind, RegistrationStatus, SubjectType, Target
from models.dossier import sniff
from models.registrations import Registration
from models.storage import LocalStorage, S3Storage, Storage, open_storage

AREA = Area("51", ["21439", "21451", "21457", "21472", "21478"])


def test_the_shipped_checklist_has_eight_papers_for_a_new_product() -> None:
    checklist = load_checklist()
    new = checklist.for_kind(RegistrationKind.NEW)
    assert [item.key for item in new.mandatory] == [
        "phieu",
        "phuongan",
        "dkkd",
        "attp",
        "congbo",
        "kiemnghiem",
        "nhan",
        "anh",
    ]
    # A re-evaluation and an upgrade also need the certificate already issued.
    for kind in (RegistrationKind.REEVALUATION, RegistrationKind.UPGRADE):
        assert "chungnhan" in [item.key for item in checklist.for_kind(kind).mandatory]
    done = checklist.completeness(RegistrationKind.NEW, {"phieu", "anh", "khac"})
    assert (done.done, done.total) == (2, 8)  # an optional paper does not count


@pytest.mark.parametrize(
    ("caption", "item"),
    [
        ("Giấy phép kinh doanh", "dkkd"),
        ("giay chung nhan ATTP", "attp"),
        ("ảnh sản phẩm", "anh"),
        ("Nhãn", "nhan"),
        ("phieu ket qua kiem nghiem", "kiemnghiem"),
        ("nhanh len", None),  # "nhan" and "anh" are words, not pieces of words
        ("", None),
    ],
)
def test_a_caption_names_its_item_without_diacritics(caption: str, item: str | None) -> None:
    found = load_checklist().match_caption(RegistrationKind.NEW, caption)
    assert (found.key if found else None) == item


def test_an_office_checklist_replaces_the_shipped_one(tmp_path: Path) -> None:
    own = tmp_path / "checklist.toml"
    own.write_text(
        """
[[items]]
key = "don"
vi = "Đơn đề nghị"
[[items]]
key = "anh"
vi = "Ảnh"
[kinds.new]
mandatory = ["don", "anh"]
[kinds.reeval]
mandatory = ["don"]
[kinds.upgrade]
mandatory = ["don"]
optional = ["anh"]
""",
        encoding="utf-8",
    )
    checklist = load_checklist(str(own))
    assert checklist.completeness(RegistrationKind.NEW, {"anh"}).total == 2
    assert checklist.item("don") is not None and checklist.item("don").label() == "Đơn đề nghị"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (('"dkkd", "attp"', '"dkkd", "nope"'), "undeclared items"),
        (('key = "anh"', 'key = "Ảnh!"'), "lowercase letters"),
        (("[kinds.upgrade]", "[kinds.other]"), "kinds.upgrade is missing"),
    ],
)
def test_a_malformed_checklist_is_refused_saying_where(
    change: tuple[str, str], complaint: str
) -> None:
    text = SHIPPED.read_text(encoding="utf-8").replace(*change, 1)
    with pytest.raises(ChecklistError, match=complaint):
        parse_checklist(text)


def _office(kind: str) -> bytes:
    buffer = io.BytesIO()
    if kind == "docx":
        docx.Document().save(buffer)
    else:
        import openpyxl

        openpyxl.Workbook().save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"\xff\xd8\xff\xdb" + b"\0" * 10, "jpeg"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 10, "png"),
        (b"%PDF-1.7\n", "pdf"),
        (_office("docx"), "docx"),
        (_office("xlsx"), "xlsx"),
        (b"MZ\x90\x00", None),  # a Windows program, whatever its name
        (b"\x7fELF\x02\x01", None),
        (b"PK\x03\x04not really a zip", None),
        (b"", None),
    ],
)
def test_the_type_comes_from_the_bytes(content: bytes, kind: str | None) -> None:
    assert sniff(content) == kind


async def _round_trip(store: Storage) -> None:
    content = b"%PDF-1.4 " + uuid.uuid4().bytes
    digest = hashlib.sha256(content).hexdigest()
    assert not await store.exists(digest)
    await store.put(digest, content)
    await store.put(digest, content)  # the same content again: stored once, no error
    assert await store.exists(digest)
    assert await store.get(digest) == content
    await store.delete(digest)
    assert not await store.exists(digest)
    await store.delete(digest)  # already gone: nothing to do


async def test_the_local_folder_stores_by_content(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "dossier")
    await _round_trip(store)
    with pytest.raises(ValueError):
        await store.get("../../etc/passwd")  # never a path of the caller's making


@pytest.fixture
def s3_server() -> Iterator[tuple[str, str, str, str]]:
    """(endpoint, bucket, access key, secret key) of an S3-compatible server: the one named by
    OCOP_TEST_S3_ENDPOINT (with OCOP_TEST_S3_BUCKET and the keys), else moto's S3 server on
    loopback; skipped when neither is there."""
    endpoint = os.environ.get("OCOP_TEST_S3_ENDPOINT")
    if endpoint:
        yield (
            endpoint,
            os.environ.get("OCOP_TEST_S3_BUCKET", "ocop-test"),
            os.environ.get("OCOP_TEST_S3_ACCESS_KEY", "minioadmin"),
            os.environ.get("OCOP_TEST_S3_SECRET_KEY", "minioadmin"),
        )
        return
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        pytest.skip("no S3-compatible server: set OCOP_TEST_S3_ENDPOINT or install moto[server]")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}", "ocop-test", "testing", "testing"
    finally:
        server.stop()


def open_bucket(s3_server: tuple[str, str, str, str], prefix: str) -> S3Storage:
    """The store of the s3_server fixture's bucket (made if missing), under `prefix`."""
    endpoint, bucket, access_key, secret_key = s3_server
    store = open_storage(
        f"s3://{bucket}/{prefix}",
        endpoint=endpoint,
        access_key=access_key,
        secret_key=secret_key,
        region="us-east-1",
    )
    assert isinstance(store, S3Storage)
    if not store.client.bucket_exists(bucket):
        store.client.make_bucket(bucket)
    return store


async def test_an_s3_compatible_bucket_stores_by_content(
    s3_server: tuple[str, str, str, str],
) -> None:
    await _round_trip(open_bucket(s3_server, "dossier-tests"))


def test_an_s3_store_needs_its_endpoint_and_keys() -> None:
    with pytest.raises(ValueError, match="OCOP_S3_ENDPOINT"):
        open_storage("s3://bucket/prefix")
    assert isinstance(open_storage("data/dossier"), LocalStorage)


def _registration() -> Registration:
    at = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)
    return Registration(
        code="OCOP-2026-0007",
        kind=RegistrationKind.NEW,
        target=Target.STAR4,
        programme_year=2026,
        commune_code="21478",
        product_name="Nước mắm cá cơm",
        product_group=ProductGroup.FOOD,
        owner_name="Nguyễn Văn A",
        subject_name="HTX Nước mắm Sa Huỳnh",
        subject_type=SubjectType.COOPERATIVE,
        address="Thôn Thạnh Đức",
        phone="+84905123456",
        ecommerce=True,
        status=RegistrationStatus.SUBMITTED,
        submitted_at=at,
        status_changed_at=at,
    )


def _text(content: bytes) -> str:
    opened = docx.Document(io.BytesIO(content))
    cells = [cell.text for table in opened.tables for row in table.rows for cell in row.cells]
    return "\n".join([p.text for p in opened.paragraphs] + cells)


def test_the_shipped_form_is_filled_with_the_registration() -> None:
    services = Services(area=AREA, timezone=ZoneInfo("Asia/Ho_Chi_Minh"))
    text = _text(registration_form(_registration(), services))
    for value in ("OCOP-2026-0007", "Nước mắm cá cơm", "Nguyễn Văn A", "Hợp tác xã", "20/11/2026"):
        assert value in text
    assert "PHIẾU ĐĂNG KÝ SẢN PHẨM" in text and "{{" not in text


def test_an_office_template_is_used_instead(tmp_path: Path) -> None:
    template = docx.Document()
    paragraph = template.add_paragraph("MẪU CỦA XÃ: ")
    paragraph.add_run("{{pro")  # Word splits a mark across runs where it likes
    paragraph.add_run("duct}} – {{representative}}")
    template.add_table(rows=1, cols=1).rows[0].cells[0].text = "Mã: {{code}} {{unknown}}"
    path = tmp_path / "mau-rieng.docx"
    template.save(str(path))
    services = Services(area=AREA, timezone=ZoneInfo("Asia/Ho_Chi_Minh"), form_template=str(path))
    text = _text(registration_form(_registration(), services))
    assert "MẪU CỦA XÃ: Nước mắm cá cơm – Nguyễn Văn A" in text
    assert "Mã: OCOP-2026-0007 {{unknown}}" in text  # an unknown mark is left for the office
    assert "PHIẾU ĐĂNG KÝ SẢN PHẨM" not in text


def test_a_missing_office_checklist_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(ChecklistError, match=r"OCOP_DOSSIER_CHECKLIST .*nowhere\.toml"):
        load_checklist(str(tmp_path / "nowhere.toml"))


def test_a_large_dossier_is_sent_in_zips_telegram_can_carry() -> None:
    from handlers.dossier_tasks import ZIP_PART_BYTES, zip_parts
    from models.dossier import DossierFile

    mb = 1024 * 1024
    rows = [DossierFile(id=n, size=size * mb) for n, size in enumerate([20, 20, 4, 20, 1, 19])]
    parts = zip_parts(rows)
    assert [[row.id for row in part] for part in parts] == [[0, 1, 2], [3, 4, 5]]
    assert all(sum(row.size for row in part) <= ZIP_PART_BYTES for part in parts)
    assert zip_parts([]) == [[]]
