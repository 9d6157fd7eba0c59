#pragma once
// Which response belongs to which request. A server answers the requests it receives strictly in
// order, so a FIFO of what was sent tells, for each backend message, the request it answers. This
// lets the session swallow the answers to messages Meridian injected (a Parse before a Bind on a
// connection that lacks the statement, a parameter-sync query), know when a server connection has
// nothing in flight, and answer every outstanding Sync if the server dies.
//
// Rules followed (PostgreSQL, "Extended Query", "Simple Query" and "COPY Operations"): after an
// ErrorResponse in the extended protocol the server discards messages until Sync; a simple Query
// or FunctionCall ends with ReadyForQuery; Describe of a statement yields ParameterDescription
// then RowDescription/NoData; from CopyInResponse until the client's CopyDone or CopyFail the
// server reads only copy messages and ignores Sync and Flush, including a Sync the client sent
// before the copy began (libpq's PQexecParams of a COPY … FROM STDIN sends Execute and Sync).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "protocol/message_types.hpp"

namespace meridian::protocol {

enum class request_kind : std::uint8_t {
  parse,
  bind,
  describe_statement,
  describe_portal,
  execute,
  close,
  sync,
  query,
  function_call,
  copy_end,  // the client's CopyDone or CopyFail: answers nothing, marks where a copy-in ends
};

struct pending_request {
  request_kind kind;
  bool synthetic = false;  // injected by Meridian: its answers are not forwarded
  bool local = false;      // never sent: Meridian answers it itself when it reaches the head
  // A client's Sync, Query or FunctionCall: what its unit does (the caller's bits, see
  // note_effect), taken when it is sent.
  std::uint8_t effect = 0;
  std::uint32_t tag = 0;   // caller's cookie, e.g. which prepared statement a Parse created

  // A client's Sync, Query or FunctionCall: the end of one of the client's units, answered by
  // its ReadyForQuery.
  [[nodiscard]] bool ends_client_unit() const {
    return !synthetic && !local &&
           (kind == request_kind::sync || kind == request_kind::query || kind == request_kind::function_call);
  }
};

struct response_verdict {
  bool forward = true;
  bool ready = false;              // a ReadyForQuery (its status byte is read by the caller)
  bool synthetic_error = false;    // an injected request failed (its error was not forwarded)
  bool unexpected = false;         // a response no request explains: the connection is unusable
  bool unsolicited = false;        // an ErrorResponse with nothing outstanding (server going away)
};

class pipeline {
 public:
  // Records a frontend message sent to the server. Messages without answers of their own
  // (Flush, CopyData, Terminate) are ignored; CopyDone and CopyFail mark where a copy-in ends
  // (see above), and a Sync sent during a copy-in is ignored as the server ignores it.
  void sent(char frontend_message_type, char describe_kind = 'S', bool synthetic = false, std::uint32_t tag = 0);
  void sent(pending_request request);
  // What the client's next message does (caller's bits, OR-ed): the unit it belongs to carries
  // them from its end (the client's next Sync, Query or FunctionCall sent).
  void note_effect(std::uint8_t bits) { open_effect_ |= bits; }
  // The requests not answered yet, oldest first, and what the client's unit not ended yet does.
  [[nodiscard]] const pending_request* unanswered_begin() const { return queue_.data() + head_; }
  [[nodiscard]] const pending_request* unanswered_end() const { return queue_.data() + queue_.size(); }
  [[nodiscard]] std::uint8_t open_effect() const { return open_effect_; }
  // A client's Sync, Query or FunctionCall is not answered yet.
  [[nodiscard]] bool client_unit_pending() const {
    for (auto i = head_; i < queue_.size(); ++i)
      if (queue_[i].ends_client_unit()) return true;
    return false;
  }

  // Classifies one backend message. Requests discarded by the server after an error are
  // appended to discarded() so the caller can undo what it assumed (e.g. a prepared statement).
  response_verdict received(char backend_message_type);

  // The request the next backend message will answer, if any.
  [[nodiscard]] std::optional<pending_request> front() const {
    if (head_ < queue_.size()) return queue_[head_];
    return std::nullopt;
  }
  // The server is reading a copy-in whose end the client has not sent yet.
  [[nodiscard]] bool copying_in() const { return copy_in_; }
  // Whether a local request has reached the head.
  [[nodiscard]] bool local_at_head() const { return has_head() && queue_[head_].local; }
  // Pops a local request that has reached the head (its turn to be answered), if any. Asked
  // after every message relayed, so the common "none" is answered inline.
  [[nodiscard]] std::optional<pending_request> take_local() {
    if (!local_at_head()) return std::nullopt;
    auto r = head();
    pop();
    return r;
  }

  // After an extended-protocol error: the server ignores everything but Sync.
  [[nodiscard]] bool discarding() const { return skipping_; }
  [[nodiscard]] bool empty() const { return head_ == queue_.size() && !skipping_; }
  [[nodiscard]] std::size_t outstanding_syncs() const;
  [[nodiscard]] std::vector<pending_request>& discarded() { return discarded_; }
  void clear();

 private:
  [[nodiscard]] bool has_head() const { return head_ < queue_.size(); }
  pending_request& head() { return queue_[head_]; }
  void pop() {
    ++head_;
    // A copy's end marker left at the head (a COPY that never started) answers nothing.
    while (head_ < queue_.size() && queue_[head_].kind == request_kind::copy_end) ++head_;
    if (head_ == queue_.size()) {
      queue_.clear();
      head_ = 0;
    }
  }
  // After an extended-protocol error: what the server will skip, up to the next Sync. Apart
  // (and not inlined) so that classifying the common messages spills no registers.
  [[gnu::noinline]] void discard_until_sync();
  // CopyInResponse: the Syncs the client sent between the request and its copy's end are not
  // answered. Apart for the same reason.
  [[gnu::noinline]] void enter_copy_in();

  std::vector<pending_request> queue_;
  std::size_t head_ = 0;
  // An extended-protocol error arrived with no Sync queued: the server drops what comes next
  // until the client's Sync.
  bool skipping_ = false;
  // The server is in copy-in and the client has not yet sent CopyDone or CopyFail.
  bool copy_in_ = false;
  std::vector<pending_request> discarded_;
  std::uint8_t open_effect_ = 0;
};

}  // namespace meridian::protocol
