"""Record content on disk: deflated, with a preset dictionary of the registers' field names.

A record's content is stored as the deterministic CBOR it is signed over
(protocol/records.py); most of those bytes are the field names, the same in
every record. Deflate primed with those names stores a WlzIndicatie in ~190
bytes instead of ~460, for ~11 µs to pack and ~3 µs to unpack, and the
bytes that come back are exactly the ones signed.

The dictionary is part of the stored format: it never changes. A later one
gets its own format byte; content stored before packing (a CBOR map, first
byte 0xa0–0xbf) is read as it is.
"""

from __future__ import annotations

import zlib
from typing import Final

from keys import cbor
from node.errors import StorageError

FORMAT_1: Final = 0x00  # cannot begin a CBOR map, which is what content stored unpacked begins with
_NAMES_1: Final = (
    "aanbieder", "aanvrager", "afgehandeldOp", "afgiftedatum", "agb", "antwoordAan", "antwoordID", "bedragPerMaand",
    "bemiddelingID", "bemiddelingspecificatie", "bemiddelingspecificatieID", "beperking", "besluitnummer",
    "bronnen", "bsn", "client", "clientID", "contactPersoon", "datum", "did", "doel", "eigenBijdrageID",
    "einddatum", "endpoint", "financiering", "geboorteDatum", "geindiceerdZorgzwaartepakket", "geldigTot",
    "geslacht", "geslachtsnaam", "grondslag", "id", "idType", "ingangsdatum", "initieelVerantwoordelijkZorgkantoor",
    "instelling", "kvk", "leveringID", "leveringperiodes", "leveringsstatus", "leveringsvorm", "leveringsvormen",
    "meerzorg", "melder", "melderOrganisatie", "melderRol", "meldingID", "omschrijving", "ontvangen", "ontvanger",
    "overdracht", "overdrachtDatum", "overdrachtID", "overdrachtspecificatie", "peildatum", "percentage", "periode",
    "pgbPercentage", "record", "reden", "regel", "regiehouder", "regiehouderID", "regierol", "regio", "soort",
    "soortToewijzing", "soortWlzindicatie", "status", "stoornis", "templates", "termijn", "toelichting",
    "toestemmingID", "toewijzingEinddatum", "toewijzingIngangsdatum", "uitvoerendZorgkantoor", "uzovi",
    "vaststellingMoment", "verantwoordelijkZorgkantoor", "verantwoordelijkheidEinddatum",
    "verantwoordelijkheidIngangsdatum", "verhuisDatum", "vervaldatum", "verzoekID", "verzoeken", "vrijeCapaciteit",
    "wlzIndicatieID", "zorgaanbodID", "zorgkantoor", "zorgperiodes", "zzpCode", "zzpCodes",
)
DICTIONARY_1: Final = b"".join(cbor.encode(name) for name in _NAMES_1)
_LEVEL: Final = 6
_DAMAGED: Final = "a record's stored content does not unpack: the database was damaged or edited"
_WINDOW: Final = -15  # raw deflate (no zlib header or checksum: the signature covers the content), 32 KiB window


def pack(encoded: bytes) -> bytes:
    packer = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WINDOW, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY_1)
    return bytes([FORMAT_1]) + packer.compress(encoded) + packer.flush()


def unpack(stored: bytes) -> bytes:
    """The encoded content ``pack`` was given; content stored before packing comes back as it is."""
    if not stored or stored[0] != FORMAT_1:
        return stored
    unpacker = zlib.decompressobj(_WINDOW, DICTIONARY_1)
    try:
        encoded = unpacker.decompress(stored[1:])
    except zlib.error as exc:
        raise StorageError(_DAMAGED) from exc
    if not unpacker.eof or unpacker.unused_data:
        raise StorageError(_DAMAGED)
    return encoded


__all__ = ["pack", "unpack", "DICTIONARY_1", "FORMAT_1"]
