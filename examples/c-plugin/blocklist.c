// blocklist: a Switchyard participant written in C, against the contract
// switchyard:participant@1.0.0 (world `participant-plugin`), through the
// bindings `wit-bindgen c` generated in bindings/.
//
// A request whose card's BIN (the first six digits of DE2) is listed in the
// `bins` setting (BINs separated by commas or spaces, e.g. "476173,400000")
// is aborted with response code 62 (restricted card). Every other request,
// with or without a card, is prepared without joining. A blocked BIN is
// logged through the host's log (the BIN only, never the card number).
//
// Memory: what an import returns (a field, a setting) is allocated with
// cabi_realloc and owned here until freed; what is passed to an import is
// borrowed by the host for the duration of the call.

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "participant_plugin.h"

// Outcome bits of `prepare` (the contract's participant interface).
#define OUTCOME_ABORTED 0x00u
#define OUTCOME_PREPARED 0x01u
#define OUTCOME_NO_JOIN 0x40u

// DE2, the primary account number.
#define FIELD_PAN 2
// Length of a BIN.
#define BIN_LEN 6
// Response code: restricted card.
#define RC_RESTRICTED_CARD "62"

// Borrows a C string as a WIT string (no copy: the host only reads it).
static participant_plugin_string_t borrow(const char *text) {
  participant_plugin_string_t s;
  participant_plugin_string_set(&s, text);
  return s;
}

static void log_line(switchyard_participant_log_level_t level, const char *text) {
  participant_plugin_string_t message = borrow(text);
  switchyard_participant_log_log(level, &message);
}

// Whether `list` (BINs separated by commas or spaces) contains `bin`.
static bool listed(const uint8_t *list, size_t len, const uint8_t bin[BIN_LEN]) {
  size_t i = 0;
  while (i < len) {
    while (i < len && (list[i] == ',' || list[i] == ' ')) {
      i++;
    }
    size_t start = i;
    while (i < len && list[i] != ',' && list[i] != ' ') {
      i++;
    }
    if (i - start == BIN_LEN && memcmp(list + start, bin, BIN_LEN) == 0) {
      return true;
    }
  }
  return false;
}

// Reads the BIN of the request's card into `bin`; false without a card, or
// with one that does not start with six digits.
static bool request_bin(uint8_t bin[BIN_LEN]) {
  participant_plugin_list_u8_t pan;
  if (!switchyard_participant_transaction_request_field(FIELD_PAN, &pan)) {
    return false;
  }
  bool ok = pan.len >= BIN_LEN;
  for (size_t i = 0; ok && i < BIN_LEN; i++) {
    ok = pan.ptr[i] >= '0' && pan.ptr[i] <= '9';
    bin[i] = pan.ptr[i];
  }
  // The card number is not kept, and this memory is reused: clear it.
  memset(pan.ptr, 0, pan.len);
  participant_plugin_list_u8_free(&pan);
  return ok;
}

uint32_t exports_switchyard_participant_participant_prepare(void) {
  uint8_t bin[BIN_LEN];
  if (!request_bin(bin)) {
    return OUTCOME_PREPARED | OUTCOME_NO_JOIN;
  }
  participant_plugin_string_t key = borrow("bins");
  participant_plugin_string_t bins;
  if (!switchyard_participant_config_get(&key, &bins)) {
    return OUTCOME_PREPARED | OUTCOME_NO_JOIN;
  }
  bool blocked = listed(bins.ptr, bins.len, bin);
  participant_plugin_string_free(&bins);
  if (!blocked) {
    return OUTCOME_PREPARED | OUTCOME_NO_JOIN;
  }

  static const char prefix[] = "blocklist: BIN ";
  static const char suffix[] = " is blocked: 62";
  char message[sizeof prefix - 1 + BIN_LEN + sizeof suffix];
  memcpy(message, prefix, sizeof prefix - 1);
  memcpy(message + sizeof prefix - 1, bin, BIN_LEN);
  memcpy(message + sizeof prefix - 1 + BIN_LEN, suffix, sizeof suffix);
  log_line(SWITCHYARD_PARTICIPANT_LOG_LEVEL_INFO, message);

  participant_plugin_string_t code = borrow(RC_RESTRICTED_CARD);
  switchyard_participant_transaction_set_result_code(&code);
  return OUTCOME_ABORTED;
}

// An aborting participant joins (jPOS semantics): it gets `abort` too. It
// has nothing to undo, and nothing to commit.
void exports_switchyard_participant_participant_commit(void) {}

void exports_switchyard_participant_participant_abort(void) {}
