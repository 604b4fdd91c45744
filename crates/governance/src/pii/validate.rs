//! Checksums and number-plan rules that turn a pattern match into a detection: Luhn and
//! issuer prefixes for cards, ISO 13616 mod-97 for IBANs, GB 11643 for Chinese resident
//! ids, SSA rules for US SSNs, NANP and ITU country codes for phone numbers.

/// Luhn check over ASCII digits; callers pass digits only.
pub(crate) fn luhn_ok(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (idx, &digit) in digits.iter().rev().enumerate() {
        let mut value = u32::from(digit.wrapping_sub(b'0'));
        if value > 9 {
            return false;
        }
        if idx % 2 == 1 {
            value *= 2;
            if value > 9 {
                value -= 9;
            }
        }
        sum += value;
    }
    // `matches!` rather than `is_multiple_of`, which is newer than the workspace MSRV.
    matches!(sum % 10, 0)
}

/// Whether the issuer prefix and length belong to a card scheme in circulation. This
/// rejects most Luhn-valid digit runs that are not cards (order or tracking numbers).
pub(crate) fn card_issuer_ok(digits: &[u8]) -> bool {
    let len = digits.len();
    let prefix = |n: usize| -> u32 {
        digits
            .iter()
            .take(n)
            .fold(0, |acc, &d| acc * 10 + u32::from(d - b'0'))
    };
    let p1 = prefix(1);
    let p2 = prefix(2);
    let p3 = prefix(3);
    let p4 = prefix(4);
    match p1 {
        // Visa (and Visa Electron).
        4 => matches!(len, 13 | 16 | 19),
        // Mastercard 51-55, Maestro 50 and 56-58.
        5 => match p2 {
            51..=55 => len == 16,
            50 | 56..=58 => (13..=19).contains(&len),
            _ => false,
        },
        // Mastercard 2221-2720, Mir 2200-2204.
        2 => {
            ((2221..=2720).contains(&p4) && len == 16) || ((2200..=2204).contains(&p4) && len >= 16)
        }
        3 => match p2 {
            // American Express.
            34 | 37 => len == 15,
            // Diners Club.
            36 => len >= 14,
            38 | 39 => len >= 14,
            30 => matches!(p3, 300..=305 | 309) && len >= 14,
            // JCB 3528-3589.
            35 => (3528..=3589).contains(&p4) && len >= 16,
            _ => false,
        },
        // Discover, UnionPay, RuPay, Maestro.
        6 => match p2 {
            60 => p4 == 6011 && len >= 16 || len == 16,
            62 => len >= 16,
            64 => (644..=649).contains(&p3) && len >= 16,
            65 => len >= 16,
            63 | 67 => (13..=19).contains(&len),
            _ => false,
        },
        // UnionPay and RuPay ranges opened since 2017.
        8 => matches!(p2, 81 | 82) && len >= 16,
        _ => false,
    }
}

/// IBAN length per country (ISO 13616 registry).
fn iban_length(country: &str) -> Option<usize> {
    let len = match country {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "FK" | "FO" | "GL" | "NL" | "SD" => 18,
        "MK" | "SI" => 19,
        "AT" | "BA" | "EE" | "KZ" | "LT" | "LU" | "MN" | "XK" => 20,
        "CH" | "HR" | "LI" | "LV" => 21,
        "BG" | "BH" | "CR" | "DE" | "GB" | "GE" | "IE" | "ME" | "RS" | "VA" => 22,
        "AE" | "GI" | "IL" | "IQ" | "OM" | "SO" | "TL" => 23,
        "AD" | "CZ" | "ES" | "MD" | "PK" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "LY" | "PT" | "ST" | "AO" | "CV" | "MZ" => 25,
        "IS" | "TR" | "DZ" | "IR" => 26,
        "BI" | "DJ" | "FR" | "GR" | "IT" | "MC" | "MR" | "SM" | "CG" | "CM" | "GA" | "MG" => 27,
        "AL" | "AZ" | "BY" | "CY" | "DO" | "GT" | "HU" | "LB" | "NI" | "PL" | "SV" | "CI"
        | "MA" | "ML" | "SN" | "BJ" | "BF" => 28,
        "BR" | "EG" | "PS" | "QA" | "UA" => 29,
        "JO" | "KW" | "MU" | "YE" => 30,
        "MT" | "SC" => 31,
        "LC" => 32,
        "RU" => 33,
        _ => return None,
    };
    Some(len)
}

/// Expected IBAN length for the country code that starts `compact`, if any.
pub(crate) fn iban_expected_len(compact: &[u8]) -> Option<usize> {
    let country = std::str::from_utf8(compact.get(..2)?).ok()?;
    iban_length(country)
}

/// ISO 13616 check on an IBAN without spaces: length for the country, then mod 97 == 1
/// over the rearranged number with letters as 10..35.
pub(crate) fn iban_ok(compact: &[u8]) -> bool {
    if iban_expected_len(compact) != Some(compact.len()) {
        return false;
    }
    if !compact[2..4].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let rearranged = compact[4..].iter().chain(&compact[..4]);
    let mut remainder = 0u32;
    for &byte in rearranged {
        let value = match byte {
            b'0'..=b'9' => u32::from(byte - b'0'),
            b'A'..=b'Z' => u32::from(byte - b'A') + 10,
            _ => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// GB 11643-1999 resident identity number: province code, a real birth date and the
/// ISO 7064 MOD 11-2 check character.
pub(crate) fn cn_id_ok(id: &[u8]) -> bool {
    if id.len() != 18 || !id[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let number = |range: std::ops::Range<usize>| -> u32 {
        id[range]
            .iter()
            .fold(0, |acc, &d| acc * 10 + u32::from(d - b'0'))
    };
    let province = number(0..2);
    let province_ok = matches!(
        province,
        11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81..=83 | 91
    );
    if !province_ok || !date_ok(number(6..10), number(10..12), number(12..14)) {
        return false;
    }
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = id[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(&d, w)| u32::from(d - b'0') * w)
        .sum();
    id[17].to_ascii_uppercase() == CHECK[(sum % 11) as usize]
}

/// A calendar date a living person could be born on.
fn date_ok(year: u32, month: u32, day: u32) -> bool {
    if !(1900..=2099).contains(&year) || !(1..=12).contains(&month) || day == 0 {
        return false;
    }
    let leap = matches!((year % 4, year % 100, year % 400), (0, 1.., _) | (0, 0, 0));
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    day <= days
}

/// US SSN ranges never issued: area 000, 666 and 900-999, group 00, serial 0000.
pub(crate) fn ssn_ok(area: u32, group: u32, serial: u32) -> bool {
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// North American Numbering Plan: area code and exchange start with 2-9 and are not
/// N11 service codes; area codes with 9 in the middle are reserved for expansion.
pub(crate) fn nanp_ok(ten_digits: &[u8]) -> bool {
    if ten_digits.len() != 10 || !ten_digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let area = &ten_digits[..3];
    let exchange = &ten_digits[3..6];
    let n11 = |code: &[u8]| code[1] == b'1' && code[2] == b'1';
    area[0] >= b'2' && area[1] != b'9' && !n11(area) && exchange[0] >= b'2' && !n11(exchange)
}

/// Mainland China mobile numbers: 11 digits, `1[3-9]` then nine digits.
pub(crate) fn cn_mobile_ok(digits: &[u8]) -> bool {
    digits.len() == 11 && digits[0] == b'1' && (b'3'..=b'9').contains(&digits[1])
}

/// Splits E.164 digits (without `+`) into an assigned ITU country calling code and the
/// national number. Calling codes are prefix-free, so at most one split matches.
pub(crate) fn split_country_code(digits: &[u8]) -> Option<(u32, &[u8])> {
    let mut code = 0u32;
    for len in 1..=3 {
        let &digit = digits.get(len - 1)?;
        code = code * 10 + u32::from(digit - b'0');
        if country_code_assigned(code, len) {
            return Some((code, &digits[len..]));
        }
    }
    None
}

fn country_code_assigned(code: u32, len: usize) -> bool {
    match len {
        1 => matches!(code, 1 | 7),
        2 => matches!(
            code,
            20 | 27
                | 30..=34
                | 36
                | 39
                | 40
                | 41
                | 43..=49
                | 51..=58
                | 60..=66
                | 81
                | 82
                | 84
                | 86
                | 90..=95
                | 98
        ),
        3 => matches!(
            code,
            211 | 212
                | 213
                | 216
                | 218
                | 220..=258
                | 260..=269
                | 290
                | 291
                | 297..=299
                | 350..=359
                | 370..=383
                | 385..=387
                | 389
                | 420
                | 421
                | 423
                | 500..=509
                | 590..=599
                | 670
                | 672..=692
                | 850
                | 852
                | 853
                | 855
                | 856
                | 880
                | 886
                | 960..=968
                | 970..=977
                | 992..=996
                | 998
        ),
        _ => false,
    }
}

/// Plausibility of an international number once the country code is known.
pub(crate) fn e164_ok(digits: &[u8]) -> bool {
    if !(8..=15).contains(&digits.len()) {
        return false;
    }
    let Some((code, national)) = split_country_code(digits) else {
        return false;
    };
    match code {
        1 => nanp_ok(national),
        // Mobiles start with 1[3-9]; Beijing landlines with area code 10.
        86 if national.starts_with(b"10") => national.len() == 10,
        86 if national.first() == Some(&b'1') => cn_mobile_ok(national),
        86 => (9..=11).contains(&national.len()),
        7 => national.len() == 10,
        _ => (6..=13).contains(&national.len()) && national.first() != Some(&b'0'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn() {
        assert!(luhn_ok(b"4111111111111111"));
        assert!(!luhn_ok(b"4111111111111112"));
        assert!(luhn_ok(b"378282246310005"));
    }

    #[test]
    fn iban() {
        assert!(iban_ok(b"DE89370400440532013000"));
        assert!(iban_ok(b"GB82WEST12345698765432"));
        assert!(!iban_ok(b"DE88370400440532013000"));
        assert!(!iban_ok(b"DE8937040044053201300"));
    }

    #[test]
    fn cn_id() {
        assert!(cn_id_ok(b"11010519491231002X"));
        assert!(!cn_id_ok(b"110105194912310021"));
        assert!(!cn_id_ok(b"11010519490231002X"));
    }

    #[test]
    fn phone_rules() {
        assert!(nanp_ok(b"2125550123"));
        assert!(!nanp_ok(b"1125550123"));
        assert!(!nanp_ok(b"2124110123"));
        assert!(e164_ok(b"4930901820"));
        assert!(e164_ok(b"8613812345678"));
        assert!(!e164_ok(b"8612812345678"));
        assert!(!e164_ok(b"2591234567"));
    }

    #[test]
    fn dates() {
        assert!(date_ok(2000, 2, 29));
        assert!(!date_ok(1900, 2, 29));
        assert!(!date_ok(2023, 4, 31));
    }
}
