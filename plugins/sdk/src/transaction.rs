//! The transaction a participant runs for.

use std::borrow::Cow;

/// The transaction the host is running the participant for: the request
/// message, the response being built, context variables and the result code.
///
/// Field numbers are ISO 8583 data elements (2..=192). Values are the field's
/// content as the listener's spec decoded it: digits for `n` fields, text as
/// ASCII, binary fields as raw bytes, never a length prefix.
///
/// In a component every method is one call into the host: a participant asks
/// for exactly the fields it reads, and asks once. A native implementation may
/// lend its own buffers ([`Cow::Borrowed`]); a component's always owns them.
pub trait Transaction {
    /// The request's message type indicator, four ASCII digits, e.g. `"0200"`.
    fn request_mti(&self) -> Cow<'_, str>;

    /// The numbers of the data elements present in the request, ascending.
    fn request_fields(&self) -> Cow<'_, [u16]>;

    /// One request data element, or `None` when it is absent.
    fn request_field(&self, field: u16) -> Option<Cow<'_, [u8]>>;

    /// One data element of the response being built, or `None` when unset.
    fn response_field(&self, field: u16) -> Option<Cow<'_, [u8]>>;

    /// Sets a data element of the response. The host refuses (with a reason)
    /// fields its spec does not define, bitmaps, and 35, 45 and 52.
    fn set_response_field(&mut self, field: u16, value: &[u8]) -> Result<(), String>;

    /// Removes a data element from the response.
    fn clear_response_field(&mut self, field: u16);

    /// A context variable (`PORT`, `TENANT`, `LISTENER`, `MTI`, or one a
    /// participant set), or `None` when it is not set.
    fn var(&self, name: &str) -> Option<Cow<'_, str>>;

    /// Sets a context variable for the participants that follow.
    fn set_var(&mut self, name: &str, value: &str);

    /// The result code decided so far, e.g. `"00"`.
    fn result_code(&self) -> Option<Cow<'_, str>>;

    /// Decides the result code (DE39 of the response). A participant that
    /// aborts in `prepare` sets the reason here first.
    fn set_result_code(&mut self, code: &str);
}

impl<T: Transaction + ?Sized> Transaction for &mut T {
    fn request_mti(&self) -> Cow<'_, str> {
        (**self).request_mti()
    }
    fn request_fields(&self) -> Cow<'_, [u16]> {
        (**self).request_fields()
    }
    fn request_field(&self, field: u16) -> Option<Cow<'_, [u8]>> {
        (**self).request_field(field)
    }
    fn response_field(&self, field: u16) -> Option<Cow<'_, [u8]>> {
        (**self).response_field(field)
    }
    fn set_response_field(&mut self, field: u16, value: &[u8]) -> Result<(), String> {
        (**self).set_response_field(field, value)
    }
    fn clear_response_field(&mut self, field: u16) {
        (**self).clear_response_field(field)
    }
    fn var(&self, name: &str) -> Option<Cow<'_, str>> {
        (**self).var(name)
    }
    fn set_var(&mut self, name: &str, value: &str) {
        (**self).set_var(name, value)
    }
    fn result_code(&self) -> Option<Cow<'_, str>> {
        (**self).result_code()
    }
    fn set_result_code(&mut self, code: &str) {
        (**self).set_result_code(code)
    }
}
