#pragma once
// The session core: where each statement of a client's query phase runs, decided in one place,
// free of I/O. The edge (proxy/) hands it the client's unconsumed bytes and what the attached
// server's answers say (the edge pairs answers with requests in its protocol::pipeline: whether
// any request is still unanswered, a copy-in, each ReadyForQuery, each error); it answers with
// one step at a time: check out a server for a unit of work, forward the front message, wait for
// the server, close a batch with a Sync of its own, give the server back. Tested without sockets
// over real drivers' recorded conversations (tests/recordings), each also fed split at every
// byte.
//
// A unit is what must run on one server: a simple Query; an extended-protocol batch up to its
// Sync (Flush does not end it); a transaction block up to the ReadyForQuery that says idle; a
// copy up to its end. The rules (routing/README.md, "The session core"):
//   - A unit starts on the server its statements need, judged from every whole message already
//     received up to the unit's end (Sync or Query): the primary if any of them may write.
//   - A write is never sent to a replica, whatever the message order. A batch open on a replica
//     that is then asked to write is closed there with a Sync of Meridian's own (it ran reads
//     only: nothing of it is lost) and goes on on the primary. Had the replica failed the batch,
//     the rest of it is skipped up to the client's Sync, which Meridian answers, as PostgreSQL
//     skips a failed batch.
//   - Inside a transaction block, a copy or a pinned session, everything goes to the server
//     attached: switching would change what the client sees.
//   - The next unit goes to the attached server at once when that server can take it (the
//     primary takes anything, a replica reads); else it waits until the attached server has
//     answered, and it is routed anew.
//   - Nothing that may write, and nothing that commits, reaches the primary without write
//     authority (routing/write_authority.hpp): a unit checked out for writing was checked at
//     checkout; after that, a message that may write outside a transaction block (a pipelined
//     unit, a pinned or session-pooled session), and a COMMIT (or PREPARE TRANSACTION), is
//     first put to the edge (authorize step). Writes inside a block need none: only its COMMIT
//     makes them durable.
#include <cstddef>
#include <cstdint>
#include <vector>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "protocol/message_types.hpp"
#include "protocol/string_hash.hpp"
#include "routing/classification_cache.hpp"
#include "routing/lost_work.hpp"
#include "routing/router.hpp"

namespace meridian::routing {

// How the core learns what a statement needs. The proxy's own recognises a session's recent
// statements and counts cache hits; each statement is classified once, by the core, and the
// edge forwards it with that classification (step::statement).
class statement_classifier {
 public:
  virtual ~statement_classifier() = default;
  // Valid until the next call.
  [[nodiscard]] virtual const classification& classify_statement(std::string_view sql) = 0;
};

// A classification_cache as a statement_classifier.
class cache_classifier final : public statement_classifier {
 public:
  explicit cache_classifier(classification_cache& cache) : cache_(cache) {}
  [[nodiscard]] const classification& classify_statement(std::string_view sql) override {
    last_ = cache_.get(sql);
    return last_;
  }

 private:
  classification_cache& cache_;
  classification last_;
};

class session_core {
 public:
  struct settings {
    std::size_t max_message = std::size_t{1} << 30;
    bool session_pooling = false;  // the server is the client's until it leaves: never released
  };

  enum class step_kind : std::uint8_t {
    need_more,    // no whole message at the front of the client's bytes
    attach,       // no server attached: check one out for `request`, then attached()
    forward,      // send the front message (`length` bytes, unchanged) to the attached server
    drop,         // consume the front message (`length` bytes) without sending it
    send_sync,    // send a Sync of Meridian's own to the attached server (its answer is not relayed)
    wait_server,  // the front message waits for the attached server's answers
    release,      // the attached server connection is free again: give it back, then released()
    answer_ready,  // consume the client's Sync (`length`) and answer it: ReadyForQuery(`ready`)
    answer_lost,   // the client's transaction block was lost with its server: consume the front
                   // message (`length`) and answer `lost` (routing/lost_work.hpp), then, when it
                   // is a Query, FunctionCall or Sync, ReadyForQuery(`ready`); the rest of a
                   // batch is skipped up to its Sync (answer_ready), or, for rollback_done,
                   // each of its messages is answered as PostgreSQL answers it for a ROLLBACK
    authorize,    // the front message may write or commits on the primary: forward it only under
                  // write authority (then authorize()), or refuse it (then abandon())
    terminate,    // the client said goodbye (Terminate)
    violation,    // a malformed message: end the session with 08P01 and `why`
  };

  // What a forwarded statement is: for the edge (parameters to replay, a pin, timing).
  struct statement_info {
    classification cls;
    hint forced = hint::none;
  };

  struct step {
    step_kind kind = step_kind::need_more;
    // forward: what the message does (routing::unit_effect), for answering its unit if the
    // server is lost. (The three small fields first: they fill what would be padding.)
    std::uint8_t effect = 0;
    lost_answer lost = lost_answer::run;                    // answer_lost
    protocol::tx_status ready = protocol::tx_status::idle;  // answer_ready, answer_lost
    std::size_t length = 0;
    route_request request{};
    // forward: the statement the message runs or prepares (Query, Parse), else nullptr. Valid
    // until the next call.
    const statement_info* statement = nullptr;
    const char* why = nullptr;
  };

  // What the edge's request pipeline says of the attached server now.
  // (No member initialisers: it is a default argument of next(). server_state{} is all false.)
  struct server_state {
    bool pending;     // requests sent to it are not all answered yet
    bool copying_in;  // it reads a copy-in whose end the client has not sent
  };

  session_core(statement_classifier& classifier, settings s) : classifier_(classifier), settings_(s) {}

  // The next step for the client's unconsumed bytes (`data` starts at the first byte not yet
  // forwarded or dropped), with the attached server as it is now (ignored when none is). Call
  // again after every step but need_more and wait_server, and after the server's answers.
  [[nodiscard]] step next(std::string_view data, server_state server = server_state{});

  // The edge checked out a server for the unit (`replica`: it serves as a replica).
  void attached(bool replica);
  // The edge gave the server back after a release step.
  void released();
  // The edge holds write authority for the message of an authorize step: next() forwards it.
  void authorize() { authorized_ = true; }
  // The same, straight to the forward step next() would now give (the authorize step must be
  // the last one taken).
  [[nodiscard]] step forward_authorized() { return forward(ahead(0)); }
  // The edge refused the message of an authorize step and let the attached server go (closed:
  // the server rolls back whatever the unit had begun); it consumes what is left of the unit
  // itself. The session starts afresh, with no server, outside any transaction.
  void abandon();
  // The attached server connection was lost: the edge answered what was in flight
  // (answer_lost_unit) and lets the server go. `after`: the client's transaction status then (T or
  // E: its block is lost, and its next units are answered here, answer_lost, until it ends);
  // `skip_batch`: the client's batch was not complete, its rest is skipped up to its Sync.
  void server_lost(protocol::tx_status after, bool skip_batch);
  // A client's extended batch is open on the attached server (its Sync not forwarded yet).
  [[nodiscard]] bool mid_batch() const { return batch_open_ || closing_batch_; }

  // The attached server's ReadyForQuery: its transaction status; `own`: the answer to the Sync
  // of a send_sync step (not relayed to the client).
  void server_ready(protocol::tx_status status, bool own = false);
  // The attached server's ErrorResponse to a request (not an unsolicited one). In an open batch
  // the server now skips to the client's Sync; if the batch moves, the rest of it is skipped.
  void server_error() {
    if (batch_open_ || closing_batch_) batch_failed_ = true;
  }

  // Session pooling: the server attached first stays the client's until it leaves.
  void hold_server(bool on) { settings_.session_pooling = on; }

  // The client's bytes in front were consumed by the edge itself (a unit it refused): what was
  // looked at ahead is looked at again.
  void forget_ahead() {
    ahead_.clear();
    head_ = 0;
    checked_ = 0;
  }

  // Whether the attached server must stay this client's even once it has answered everything:
  // a transaction block, an open batch, a unit not yet sent, a pinned or session-pooled session.
  // Else it may go back to its pool once nothing is pending (next() then says release).
  [[nodiscard]] bool holds_server() const;
  [[nodiscard]] bool attached() const { return attached_; }
  [[nodiscard]] bool on_replica() const { return attached_ && replica_; }
  [[nodiscard]] bool pinned() const { return pinned_; }
  // The client's block lost with its server (T: it does not know yet; E: it does), else idle.
  [[nodiscard]] protocol::tx_status lost_transaction() const { return lost_; }
  [[nodiscard]] protocol::tx_status transaction_status() const { return tx_; }
  // The attached server is inside a transaction block or an extended-protocol batch of this
  // client's (what it began there would be committed by what follows).
  [[nodiscard]] bool unit_open() const { return in_transaction_block() || batch_open_ || closing_batch_; }

 private:
  // A whole client message looked at once: its size and, for Query and Parse, what it runs.
  struct looked {
    std::size_t size = 0;
    char type = 0;
    bool write = false;  // it may write (or it pins the session): it needs the primary
    bool commits = false;  // it commits a transaction block (COMMIT, PREPARE TRANSACTION)
    std::uint8_t effect = 0;  // routing::unit_effect
    std::optional<statement_info> statement;
    char kind = 0;     // Describe, Close: 'S' statement or 'P' portal
    std::string name;  // Parse, Bind, Describe, Close: the statement's (or portal's) name
  };

  // Frames and classifies the message at `offset` of `data` (memoised in ahead_ while it is not
  // consumed; the pointer is valid until the next look); null when it is not whole yet; sets
  // violation_ when its type is unknown or what routing reads of it is malformed.
  looked* look(std::string_view data, std::size_t index, std::size_t offset);
  // Where the unit beginning at the front of `data` needs to run.
  route_request route_unit(std::string_view data);
  // Whether the attached server can run the front message now.
  [[nodiscard]] bool server_can_take(const looked& m) const { return !replica_ || !m.write; }
  [[nodiscard]] bool in_transaction_block() const { return tx_ != protocol::tx_status::idle; }
  step forward(looked& m);
  void prepared(const std::string& name, const statement_info& s);
  // The front unit of a client whose block was lost with its server (lost_ is T or E).
  step answer_lost(std::string_view data, looked& m);
  step consume(step_kind kind, std::size_t size);

  statement_classifier& classifier_;
  settings settings_;
  // The front messages, looked at already, in order, from head_ (a vector used as a queue: its
  // slots are reused once all are consumed, so looking allocates nothing in the steady state).
  std::vector<looked> ahead_;
  std::size_t head_ = 0;
  [[nodiscard]] std::size_t ahead_count() const { return ahead_.size() - head_; }
  [[nodiscard]] looked& ahead(std::size_t i) { return ahead_[head_ + i]; }
  // Client statement names and what they run; the unnamed one apart.
  std::unordered_map<std::string, statement_info, protocol::string_hash, std::equal_to<>> statements_;
  std::optional<statement_info> unnamed_;
  std::string violation_;
  bool attached_ = false;
  bool fresh_ = false;  // attached for a unit, nothing of it sent yet
  bool replica_ = false;
  bool pinned_ = false;
  bool batch_open_ = false;     // extended-protocol messages sent since the last Sync
  bool closing_batch_ = false;  // Meridian's own Sync sent: the batch moves once it is answered
  bool batch_failed_ = false;   // the open batch failed on its server
  bool skipping_ = false;       // what is left of a failed batch, up to the client's Sync
  bool emulating_ = false;      // a lost block's extended ROLLBACK (or COMMIT): answered here, up to its Sync
  // The front message is skipped or answered here (skipping_, emulating_). Apart (and not
  // inlined) so that next()'s common path stays as it was.
  [[gnu::noinline]] step skip_or_emulate(const looked& m);
  protocol::tx_status skip_ready_ = protocol::tx_status::idle;  // the Sync's answer then
  // The client's transaction block was lost with its server: T, the client was not told yet; E,
  // it was. Idle: nothing lost.
  protocol::tx_status lost_ = protocol::tx_status::idle;
  bool authorized_ = false;     // the front message holds write authority (authorize step)
  std::size_t checked_ = 0;     // messages the unit was checked out for, not forwarded yet
  protocol::tx_status tx_ = protocol::tx_status::idle;
};

}  // namespace meridian::routing
