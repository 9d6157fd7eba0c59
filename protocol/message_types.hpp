#pragma once
// Type bytes of the PostgreSQL v3 protocol, one named constant each. Logic never uses bare chars.
// Reference: PostgreSQL docs, "Message Formats" (protocol 3.0).

namespace meridian::protocol {

namespace frontend_type {
inline constexpr char bind = 'B';
inline constexpr char close = 'C';
inline constexpr char copy_data = 'd';
inline constexpr char copy_done = 'c';
inline constexpr char copy_fail = 'f';
inline constexpr char describe = 'D';
inline constexpr char execute = 'E';
inline constexpr char flush = 'H';
inline constexpr char function_call = 'F';
inline constexpr char parse = 'P';
// PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse share 'p'.
inline constexpr char password = 'p';
inline constexpr char query = 'Q';
inline constexpr char sync = 'S';
inline constexpr char terminate = 'X';

// A type a client may send once started (PostgreSQL rejects any other before reading its length).
constexpr bool known(char t) {
  switch (t) {
    case bind:
    case close:
    case copy_data:
    case copy_done:
    case copy_fail:
    case describe:
    case execute:
    case flush:
    case function_call:
    case parse:
    case password:
    case query:
    case sync:
    case terminate:
      return true;
    default:
      return false;
  }
}
}  // namespace frontend_type

namespace backend_type {
inline constexpr char authentication = 'R';
inline constexpr char backend_key_data = 'K';
inline constexpr char bind_complete = '2';
inline constexpr char close_complete = '3';
inline constexpr char command_complete = 'C';
inline constexpr char copy_data = 'd';
inline constexpr char copy_done = 'c';
inline constexpr char copy_in_response = 'G';
inline constexpr char copy_out_response = 'H';
inline constexpr char copy_both_response = 'W';
inline constexpr char data_row = 'D';
inline constexpr char empty_query_response = 'I';
inline constexpr char error_response = 'E';
inline constexpr char function_call_response = 'V';
inline constexpr char negotiate_protocol_version = 'v';
inline constexpr char no_data = 'n';
inline constexpr char notice_response = 'N';
inline constexpr char notification_response = 'A';
inline constexpr char parameter_description = 't';
inline constexpr char parameter_status = 'S';
inline constexpr char parse_complete = '1';
inline constexpr char portal_suspended = 's';
inline constexpr char ready_for_query = 'Z';
inline constexpr char row_description = 'T';
}  // namespace backend_type

// Authentication request codes carried in an 'R' message.
enum class auth_code : int {
  ok = 0,
  kerberos_v5 = 2,
  cleartext_password = 3,
  md5_password = 5,
  gss = 7,
  gss_continue = 8,
  sspi = 9,
  sasl = 10,
  sasl_continue = 11,
  sasl_final = 12,
};

// Request codes that take the place of a protocol version in an untyped startup packet.
inline constexpr int protocol_version_3 = 196608;  // 3.0
inline constexpr int cancel_request_code = 80877102;
inline constexpr int ssl_request_code = 80877103;
inline constexpr int gssenc_request_code = 80877104;

// Transaction status byte of ReadyForQuery.
enum class tx_status : char { idle = 'I', in_transaction = 'T', failed = 'E' };

}  // namespace meridian::protocol
