//! The built-in ISO 8583:1987 ASCII spec, byte-identical to pyiso8583 4.0.1 `specs.default`:
//! ASCII MTI, 8-byte binary bitmaps, ASCII data and ASCII length prefixes, binary DE52, DE55,
//! DE64, DE96 and DE128, the same lengths and length kinds for every field.
//!
//! pyiso8583 has no content types; ours follow ISO 8583:1987, except where real traffic
//! routinely needs more: DE34 and DE44 are ans, DE45 (track 1) is ans, DE36 (track 3) is z, and
//! the "x+n" amounts (DE28–31, DE97) and the currency codes (DE49–51, "a or n") are an.

use crate::spec::{BitmapEncoding, ContentType, FieldSpec, LengthKind, MtiEncoding, Spec};

use ContentType::{An, Ans, B, N, Z};
use LengthKind::{Fixed, LL, LLL};

/// A row of a field table: (field, length kind, length or maximum length,
/// content, description).
pub(crate) type FieldRow = (u16, LengthKind, u32, ContentType, &'static str);

const FIELDS: &[FieldRow] = &[
    (2, LL, 19, N, "Primary Account Number (PAN)"),
    (3, Fixed, 6, N, "Processing Code"),
    (4, Fixed, 12, N, "Amount, Transaction"),
    (5, Fixed, 12, N, "Amount, Settlement"),
    (6, Fixed, 12, N, "Amount, Cardholder Billing"),
    (7, Fixed, 10, N, "Transmission Date and Time"),
    (8, Fixed, 8, N, "Amount, Cardholder Billing Fee"),
    (9, Fixed, 8, N, "Conversion Rate, Settlement"),
    (10, Fixed, 8, N, "Conversion Rate, Cardholder Billing"),
    (11, Fixed, 6, N, "System Trace Audit Number"),
    (12, Fixed, 6, N, "Time, Local Transaction"),
    (13, Fixed, 4, N, "Date, Local Transaction"),
    (14, Fixed, 4, N, "Date, Expiration"),
    (15, Fixed, 4, N, "Date, Settlement"),
    (16, Fixed, 4, N, "Date, Conversion"),
    (17, Fixed, 4, N, "Date, Capture"),
    (18, Fixed, 4, N, "Merchant Type"),
    (19, Fixed, 3, N, "Acquiring Institution Country Code"),
    (20, Fixed, 3, N, "PAN Country Code"),
    (21, Fixed, 3, N, "Forwarding Institution Country Code"),
    (22, Fixed, 3, N, "Point-of-Service Entry Mode"),
    (23, Fixed, 3, N, "PAN Sequence Number"),
    (24, Fixed, 3, N, "Network International ID (NII)"),
    (25, Fixed, 2, N, "Point-of-Service Condition Code"),
    (26, Fixed, 2, N, "Point-of-Service Capture Code"),
    (27, Fixed, 1, N, "Authorizing ID Response Length"),
    (28, Fixed, 9, An, "Amount, Transaction Fee"),
    (29, Fixed, 9, An, "Amount, Settlement Fee"),
    (30, Fixed, 9, An, "Amount, Transaction Processing Fee"),
    (31, Fixed, 9, An, "Amount, Settlement Processing Fee"),
    (32, LL, 11, N, "Acquiring Institution ID Code"),
    (33, LL, 11, N, "Forwarding Institution ID Code"),
    (34, LL, 28, Ans, "Primary Account Number, Extended"),
    (35, LL, 37, Z, "Track 2 Data"),
    (36, LLL, 104, Z, "Track 3 Data"),
    (37, Fixed, 12, An, "Retrieval Reference Number"),
    (38, Fixed, 6, An, "Authorization ID Response"),
    (39, Fixed, 2, An, "Response Code"),
    (40, Fixed, 3, An, "Service Restriction Code"),
    (41, Fixed, 8, Ans, "Card Acceptor Terminal ID"),
    (42, Fixed, 15, Ans, "Card Acceptor ID Code"),
    (43, Fixed, 40, Ans, "Card Acceptor Name/Location"),
    (44, LL, 25, Ans, "Additional Response Data"),
    (45, LL, 76, Ans, "Track 1 Data"),
    (46, LLL, 999, Ans, "Additional Data - ISO"),
    (47, LLL, 999, Ans, "Additional Data - National"),
    (48, LLL, 999, Ans, "Additional Data - Private"),
    (49, Fixed, 3, An, "Currency Code, Transaction"),
    (50, Fixed, 3, An, "Currency Code, Settlement"),
    (51, Fixed, 3, An, "Currency Code, Cardholder Billing"),
    (52, Fixed, 8, B, "PIN"),
    (53, Fixed, 16, N, "Security-Related Control Information"),
    (54, LLL, 240, An, "Additional Amounts"),
    (55, LLL, 255, B, "ICC data"),
    (56, LLL, 999, Ans, "Reserved ISO"),
    (57, LLL, 999, Ans, "Reserved National"),
    (58, LLL, 999, Ans, "Reserved National"),
    (59, LLL, 999, Ans, "Reserved National"),
    (60, LLL, 999, Ans, "Reserved National"),
    (61, LLL, 999, Ans, "Reserved Private"),
    (62, LLL, 999, Ans, "Reserved Private"),
    (63, LLL, 999, Ans, "Reserved Private"),
    (64, Fixed, 8, B, "MAC"),
    (66, Fixed, 1, N, "Settlement Code"),
    (67, Fixed, 2, N, "Extended Payment Code"),
    (68, Fixed, 3, N, "Receiving Institution Country Code"),
    (69, Fixed, 3, N, "Settlement Institution Country Code"),
    (70, Fixed, 3, N, "Network Management Information Code"),
    (71, Fixed, 4, N, "Message Number"),
    (72, Fixed, 4, N, "Message Number, Last"),
    (73, Fixed, 6, N, "Date, Action"),
    (74, Fixed, 10, N, "Credits, Number"),
    (75, Fixed, 10, N, "Credits, Reversal Number"),
    (76, Fixed, 10, N, "Debits, Number"),
    (77, Fixed, 10, N, "Debits, Reversal Number"),
    (78, Fixed, 10, N, "Transfer, Number"),
    (79, Fixed, 10, N, "Transfer, Reversal Number"),
    (80, Fixed, 10, N, "Inquiries, Number"),
    (81, Fixed, 10, N, "Authorizations, Number"),
    (82, Fixed, 12, N, "Credits, Processing Fee Amount"),
    (83, Fixed, 12, N, "Credits, Transaction Fee Amount"),
    (84, Fixed, 12, N, "Debits, Processing Fee Amount"),
    (85, Fixed, 12, N, "Debits, Transaction Fee Amount"),
    (86, Fixed, 16, N, "Credits, Amount"),
    (87, Fixed, 16, N, "Credits, Reversal Amount"),
    (88, Fixed, 16, N, "Debits, Amount"),
    (89, Fixed, 16, N, "Debits, Reversal Amount"),
    (90, Fixed, 42, N, "Original Data Elements"),
    (91, Fixed, 1, An, "File Update Code"),
    (92, Fixed, 2, An, "File Security Code"),
    (93, Fixed, 5, An, "Response Indicator"),
    (94, Fixed, 7, An, "Service Indicator"),
    (95, Fixed, 42, An, "Replacement Amounts"),
    (96, Fixed, 8, B, "Message Security Code"),
    (97, Fixed, 17, An, "Amount, Net Settlement"),
    (98, Fixed, 25, Ans, "Payee"),
    (99, LL, 11, N, "Settlement Institution ID Code"),
    (100, LL, 11, N, "Receiving Institution ID Code"),
    (101, LL, 17, Ans, "File Name"),
    (102, LL, 28, Ans, "Account ID 1"),
    (103, LL, 28, Ans, "Account ID 2"),
    (104, LLL, 100, Ans, "Transaction Description"),
    (105, LLL, 999, Ans, "Reserved for ISO Use"),
    (106, LLL, 999, Ans, "Reserved for ISO Use"),
    (107, LLL, 999, Ans, "Reserved for ISO Use"),
    (108, LLL, 999, Ans, "Reserved for ISO Use"),
    (109, LLL, 999, Ans, "Reserved for ISO Use"),
    (110, LLL, 999, Ans, "Reserved for ISO Use"),
    (111, LLL, 999, Ans, "Reserved for ISO Use"),
    (112, LLL, 999, Ans, "Reserved for National Use"),
    (113, LLL, 999, Ans, "Reserved for National Use"),
    (114, LLL, 999, Ans, "Reserved for National Use"),
    (115, LLL, 999, Ans, "Reserved for National Use"),
    (116, LLL, 999, Ans, "Reserved for National Use"),
    (117, LLL, 999, Ans, "Reserved for National Use"),
    (118, LLL, 999, Ans, "Reserved for National Use"),
    (119, LLL, 999, Ans, "Reserved for National Use"),
    (120, LLL, 999, Ans, "Reserved for Private Use"),
    (121, LLL, 999, Ans, "Reserved for Private Use"),
    (122, LLL, 999, Ans, "Reserved for Private Use"),
    (123, LLL, 999, Ans, "Reserved for Private Use"),
    (124, LLL, 999, Ans, "Reserved for Private Use"),
    (125, LLL, 999, Ans, "Reserved for Private Use"),
    (126, LLL, 999, Ans, "Reserved for Private Use"),
    (127, LLL, 999, Ans, "Reserved for Private Use"),
    (128, Fixed, 8, B, "MAC"),
];

pub(crate) fn spec() -> Spec {
    ascii_spec("iso87-ascii", FIELDS)
}

/// A spec named `name` with ASCII MTI, 8-byte binary bitmaps (bit 65
/// announcing a tertiary one) and the fields of `table`.
pub(crate) fn ascii_spec(name: &'static str, table: &[FieldRow]) -> Spec {
    let mut spec = Spec::new(name)
        .with_mti_encoding(MtiEncoding::Ascii)
        .with_bitmap_encoding(BitmapEncoding::Binary)
        .with_tertiary_bitmap(true);
    for &(n, length, len, content, description) in table {
        let field = match length {
            Fixed => FieldSpec::fixed(len, content),
            _ => FieldSpec::variable(length, len, content),
        }
        .with_description(description);
        // The table is checked by a test; a bad entry would be a bug caught there.
        let _ = spec.set_field(n, field);
    }
    spec
}

/// Every row of `table` is defined in `spec` as written, and valid.
#[cfg(test)]
pub(crate) fn check_table(spec: &Spec, table: &[FieldRow]) {
    for &(n, length, len, content, _) in table {
        let f = spec.field(n).unwrap_or_else(|| panic!("field {n}"));
        assert_eq!(
            (f.length(), f.max_len(), f.content()),
            (length, len, content)
        );
        f.validate().unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_valid_and_defined() {
        let spec = spec();
        assert_eq!(FIELDS.len(), 126);
        check_table(&spec, FIELDS);
        assert!(!spec.defines(1));
        assert!(!spec.defines(65));
        assert!(!spec.defines(129));
        assert!((2..=64).chain(66..=128).all(|n| spec.defines(n)));
    }
}
