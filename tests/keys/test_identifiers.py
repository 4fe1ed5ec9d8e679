import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys import InvalidIdentifier, check_agb, check_bsn, check_identifier, check_kvk, check_uzovi

FIXTURE_BSNS = ["106658037", "737459086", "666952152"]


@pytest.mark.parametrize("bsn", FIXTURE_BSNS)
def test_fixture_bsns_pass_the_11_proef(bsn: str) -> None:
    assert check_bsn(bsn) == bsn


@pytest.mark.parametrize("bsn", ["106658036", "12345678", "1234567890", "10665803a", "000000000", 106658037, "１０６６５８０３７"])
def test_bad_bsns_are_refused_without_repeating_them(bsn: object) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        check_bsn(bsn)
    assert str(bsn) not in str(info.value)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_11_proef_agrees_with_its_definition(bsn: str) -> None:
    total = sum(int(d) * w for d, w in zip(bsn, (9, 8, 7, 6, 5, 4, 3, 2, -1)))
    valid = total % 11 == 0 and bsn != "000000000"
    try:
        check_bsn(bsn)
        assert valid
    except InvalidIdentifier:
        assert not valid


def test_other_identifiers_have_fixed_lengths() -> None:
    assert check_agb("12345678") == "12345678"
    assert check_uzovi("5151") == "5151"
    assert check_kvk("62253778") == "62253778"
    for check, bad in ((check_agb, "1234567"), (check_uzovi, "51510"), (check_kvk, "6225377x")):
        with pytest.raises(InvalidIdentifier):
            check(bad)
    with pytest.raises(InvalidIdentifier):
        check_identifier("iban", "NL00")
