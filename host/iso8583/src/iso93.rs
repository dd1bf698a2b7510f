//! The ISO 8583:1993 field definitions of the built-in `iso93-*` specs.
//!
//! Where 1993 differs from 1987: DE12 is the local date and time (n12), DE22 the point-of-service
//! data code (an12), DE24 the function code, DE25/26 are n4, DE28–30 reconciliation data,
//! DE39 the action code (n3), DE43/44 LLVAR up to 99, DE53 and DE55 binary, DE56 the original
//! data elements (LLVAR n..35), DE96 key management data (LLLVAR b). `anp` fields (DE37, DE38)
//! are ans, so that their space padding is allowed.

use crate::iso87::{FieldRow, ascii_spec};
use crate::spec::{ContentType, LengthKind, Spec};

use ContentType::{An, Ans, B, N, Z};
use LengthKind::{Fixed, LL, LLL};

const FIELDS: &[FieldRow] = &[
    (2, LL, 19, N, "Primary Account Number (PAN)"),
    (3, Fixed, 6, N, "Processing Code"),
    (4, Fixed, 12, N, "Amount, Transaction"),
    (5, Fixed, 12, N, "Amount, Reconciliation"),
    (6, Fixed, 12, N, "Amount, Cardholder Billing"),
    (7, Fixed, 10, N, "Date and Time, Transmission"),
    (8, Fixed, 8, N, "Amount, Cardholder Billing Fee"),
    (9, Fixed, 8, N, "Conversion Rate, Reconciliation"),
    (10, Fixed, 8, N, "Conversion Rate, Cardholder Billing"),
    (11, Fixed, 6, N, "System Trace Audit Number"),
    (12, Fixed, 12, N, "Date and Time, Local Transaction"),
    (13, Fixed, 4, N, "Date, Effective"),
    (14, Fixed, 4, N, "Date, Expiration"),
    (15, Fixed, 6, N, "Date, Settlement"),
    (16, Fixed, 4, N, "Date, Conversion"),
    (17, Fixed, 4, N, "Date, Capture"),
    (18, Fixed, 4, N, "Merchant Type"),
    (19, Fixed, 3, N, "Country Code, Acquiring Institution"),
    (20, Fixed, 3, N, "Country Code, Primary Account Number"),
    (21, Fixed, 3, N, "Country Code, Forwarding Institution"),
    (22, Fixed, 12, An, "Point of Service Data Code"),
    (23, Fixed, 3, N, "Card Sequence Number"),
    (24, Fixed, 3, N, "Function Code"),
    (25, Fixed, 4, N, "Message Reason Code"),
    (26, Fixed, 4, N, "Card Acceptor Business Code"),
    (27, Fixed, 1, N, "Approval Code Length"),
    (28, Fixed, 6, N, "Date, Reconciliation"),
    (29, Fixed, 3, N, "Reconciliation Indicator"),
    (30, Fixed, 24, N, "Amounts, Original"),
    (31, LL, 99, Ans, "Acquirer Reference Data"),
    (32, LL, 11, N, "Acquiring Institution ID Code"),
    (33, LL, 11, N, "Forwarding Institution ID Code"),
    (34, LL, 28, Ans, "Primary Account Number, Extended"),
    (35, LL, 37, Z, "Track 2 Data"),
    (36, LLL, 104, Z, "Track 3 Data"),
    (37, Fixed, 12, Ans, "Retrieval Reference Number"),
    (38, Fixed, 6, Ans, "Approval Code"),
    (39, Fixed, 3, N, "Action Code"),
    (40, Fixed, 3, N, "Service Code"),
    (41, Fixed, 8, Ans, "Card Acceptor Terminal ID"),
    (42, Fixed, 15, Ans, "Card Acceptor ID Code"),
    (43, LL, 99, Ans, "Card Acceptor Name/Location"),
    (44, LL, 99, Ans, "Additional Response Data"),
    (45, LL, 76, Ans, "Track 1 Data"),
    (46, LLL, 204, Ans, "Amounts, Fees"),
    (47, LLL, 999, Ans, "Additional Data - National"),
    (48, LLL, 999, Ans, "Additional Data - Private"),
    (49, Fixed, 3, An, "Currency Code, Transaction"),
    (50, Fixed, 3, An, "Currency Code, Reconciliation"),
    (51, Fixed, 3, An, "Currency Code, Cardholder Billing"),
    (52, Fixed, 8, B, "PIN Data"),
    (53, LL, 48, B, "Security Related Control Information"),
    (54, LLL, 120, Ans, "Amounts, Additional"),
    (55, LLL, 255, B, "ICC System Related Data"),
    (56, LL, 35, N, "Original Data Elements"),
    (57, Fixed, 3, N, "Authorization Life Cycle Code"),
    (58, LL, 11, N, "Authorizing Agent Institution ID Code"),
    (59, LLL, 999, Ans, "Transport Data"),
    (60, LLL, 999, Ans, "Reserved for National Use"),
    (61, LLL, 999, Ans, "Reserved for National Use"),
    (62, LLL, 999, Ans, "Reserved for Private Use"),
    (63, LLL, 999, Ans, "Reserved for Private Use"),
    (64, Fixed, 8, B, "Message Authentication Code"),
    (66, LLL, 204, Ans, "Amounts, Original Fees"),
    (67, Fixed, 2, N, "Extended Payment Data"),
    (68, Fixed, 3, N, "Country Code, Receiving Institution"),
    (69, Fixed, 3, N, "Country Code, Settlement Institution"),
    (
        70,
        Fixed,
        3,
        N,
        "Country Code, Authorizing Agent Institution",
    ),
    (71, Fixed, 8, N, "Message Number"),
    (72, LLL, 999, Ans, "Data Record"),
    (73, Fixed, 6, N, "Date, Action"),
    (74, Fixed, 10, N, "Credits, Number"),
    (75, Fixed, 10, N, "Credits, Reversal Number"),
    (76, Fixed, 10, N, "Debits, Number"),
    (77, Fixed, 10, N, "Debits, Reversal Number"),
    (78, Fixed, 10, N, "Transfer, Number"),
    (79, Fixed, 10, N, "Transfer, Reversal Number"),
    (80, Fixed, 10, N, "Inquiries, Number"),
    (81, Fixed, 10, N, "Authorizations, Number"),
    (82, Fixed, 10, N, "Inquiries, Reversal Number"),
    (83, Fixed, 10, N, "Payments, Number"),
    (84, Fixed, 10, N, "Payments, Reversal Number"),
    (85, Fixed, 10, N, "Fee Collections, Number"),
    (86, Fixed, 16, N, "Credits, Amount"),
    (87, Fixed, 16, N, "Credits, Reversal Amount"),
    (88, Fixed, 16, N, "Debits, Amount"),
    (89, Fixed, 16, N, "Debits, Reversal Amount"),
    (90, Fixed, 10, N, "Authorizations, Reversal Number"),
    (
        91,
        Fixed,
        3,
        N,
        "Country Code, Transaction Destination Institution",
    ),
    (
        92,
        Fixed,
        3,
        N,
        "Country Code, Transaction Originator Institution",
    ),
    (93, LL, 11, N, "Transaction Destination Institution ID Code"),
    (94, LL, 11, N, "Transaction Originator Institution ID Code"),
    (95, LL, 99, Ans, "Card Issuer Reference Data"),
    (96, LLL, 999, B, "Key Management Data"),
    (97, Fixed, 17, An, "Amount, Net Reconciliation"),
    (98, Fixed, 25, Ans, "Payee"),
    (99, LL, 11, An, "Settlement Institution ID Code"),
    (100, LL, 11, N, "Receiving Institution ID Code"),
    (101, LL, 17, Ans, "File Name"),
    (102, LL, 28, Ans, "Account Identification 1"),
    (103, LL, 28, Ans, "Account Identification 2"),
    (104, LLL, 100, Ans, "Transaction Description"),
    (105, Fixed, 16, N, "Credits, Chargeback Amount"),
    (106, Fixed, 16, N, "Debits, Chargeback Amount"),
    (107, Fixed, 10, N, "Credits, Chargeback Number"),
    (108, Fixed, 10, N, "Debits, Chargeback Number"),
    (109, LL, 84, Ans, "Credits, Fee Amounts"),
    (110, LL, 84, Ans, "Debits, Fee Amounts"),
    (111, LLL, 999, Ans, "Reserved for ISO Use"),
    (112, LLL, 999, Ans, "Reserved for ISO Use"),
    (113, LLL, 999, Ans, "Reserved for ISO Use"),
    (114, LLL, 999, Ans, "Reserved for ISO Use"),
    (115, LLL, 999, Ans, "Reserved for ISO Use"),
    (116, LLL, 999, Ans, "Reserved for National Use"),
    (117, LLL, 999, Ans, "Reserved for National Use"),
    (118, LLL, 999, Ans, "Reserved for National Use"),
    (119, LLL, 999, Ans, "Reserved for National Use"),
    (120, LLL, 999, Ans, "Reserved for National Use"),
    (121, LLL, 999, Ans, "Reserved for National Use"),
    (122, LLL, 999, Ans, "Reserved for National Use"),
    (123, LLL, 999, Ans, "Reserved for Private Use"),
    (124, LLL, 999, Ans, "Reserved for Private Use"),
    (125, LLL, 999, Ans, "Reserved for Private Use"),
    (126, LLL, 999, Ans, "Reserved for Private Use"),
    (127, LLL, 999, Ans, "Reserved for Private Use"),
    (128, Fixed, 8, B, "Message Authentication Code"),
];

/// ISO 8583:1993 with ASCII fields and 8-byte binary bitmaps (bit 65 announces a tertiary
/// bitmap, as in `iso87-ascii`).
pub(crate) fn spec() -> Spec {
    ascii_spec("iso93-ascii", FIELDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_valid_and_defined() {
        let spec = spec();
        assert_eq!(FIELDS.len(), 126);
        crate::iso87::check_table(&spec, FIELDS);
        assert!((2..=64).chain(66..=128).all(|n| spec.defines(n)));
        assert_eq!(spec.field(12).unwrap().max_len(), 12);
        assert_eq!(spec.field(22).unwrap().content(), ContentType::An);
    }
}
