#pragma once
// What a client is told of its work when the server connection running it is lost (the server
// died, was shut down, or its backend was terminated), free of I/O. Under transaction pooling the
// client's connection is Meridian's, not the backend's: it stays open, and each unit of work
// (a simple Query, or an extended-protocol batch up to its Sync) gets exactly the answer the
// loss makes true, in order:
//   - outside a transaction block, a unit that may write or commits got no answer: whether it
//     took effect is unknown, 08007 (transaction_resolution_unknown);
//   - a unit that only read, or a transaction block that had not committed: nothing of it
//     remains, 57P01 (admin_shutdown, what PostgreSQL says of a terminated backend); a block is
//     then failed (status E) as after any error, until the client ends it;
//   - a COMMIT sent in an open block with no answer: 08007, the block is over;
//   - in a failed block, what PostgreSQL answers: 25P02 for a statement, "ROLLBACK" for the
//     ROLLBACK (or COMMIT) that ends it.
// The same rules answer the client's next units while its lost block is still open, with no
// server (the block's server is gone, so a COMMIT there is known not to commit: 57P01).
#include <cstdint>

#include "protocol/message_types.hpp"

namespace meridian::routing {

// What a unit's statements do, as far as the loss is concerned (bits, OR-ed over the unit).
namespace unit_effect {
constexpr std::uint8_t writes = 1;   // may write (it needs the primary)
constexpr std::uint8_t commits = 2;  // COMMIT, END, PREPARE TRANSACTION
constexpr std::uint8_t begins = 4;   // BEGIN, START TRANSACTION
constexpr std::uint8_t ends = 8;     // COMMIT, ROLLBACK, END, ABORT (and the PREPARED forms)
}  // namespace unit_effect

enum class lost_answer : std::uint8_t {
  run,              // nothing to say: the unit runs on a server
  unknown_outcome,  // ErrorResponse 08007, then ReadyForQuery
  rolled_back,      // ErrorResponse 57P01, then ReadyForQuery
  aborted,          // ErrorResponse 25P02, then ReadyForQuery
  rollback_done,    // CommandComplete "ROLLBACK", then ReadyForQuery (for an extended batch of
                    // ROLLBACK or COMMIT: each message's answer, as PostgreSQL gives them)
};

struct lost_outcome {
  lost_answer answer;
  protocol::tx_status after;  // the client's transaction status after the answer
};

// The answer to one unit. `before`: the client's transaction status before it (T: a block the
// client does not know is lost; E: a failed block, which it knows of). `in_flight`: the unit was
// sent to the lost server and not answered (else it arrived after the loss). `simple`: a Query
// (an extended batch's ROLLBACK in flight may have had some of its answers: rolled_back).
[[nodiscard]] constexpr lost_outcome answer_lost_unit(protocol::tx_status before, std::uint8_t effect, bool in_flight,
                                                      bool simple) {
  using protocol::tx_status;
  namespace ue = unit_effect;
  const bool ends = (effect & ue::ends) != 0;
  const bool commits = (effect & ue::commits) != 0;
  const lost_answer rollback = in_flight && !simple ? lost_answer::rolled_back : lost_answer::rollback_done;
  switch (before) {
    case tx_status::idle:
      if ((effect & ue::begins) && !ends) return {lost_answer::rolled_back, tx_status::failed};
      if ((effect & ue::writes) || commits) {
        return {in_flight ? lost_answer::unknown_outcome : lost_answer::run, tx_status::idle};
      }
      return {in_flight ? lost_answer::rolled_back : lost_answer::run, tx_status::idle};
    case tx_status::in_transaction:
      if (ends && commits) return {in_flight ? lost_answer::unknown_outcome : lost_answer::rolled_back, tx_status::idle};
      if (ends) return {rollback, tx_status::idle};
      return {lost_answer::rolled_back, tx_status::failed};
    case tx_status::failed:
      if (ends) return {rollback, tx_status::idle};  // a COMMIT too: PostgreSQL says "ROLLBACK"
      return {lost_answer::aborted, tx_status::failed};
  }
  return {lost_answer::rolled_back, tx_status::idle};
}

}  // namespace meridian::routing
