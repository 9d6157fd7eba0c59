// The client session: read-your-writes, the commit position a read on a replica must have replayed
// (see session_parts.hpp for how the session is split).
#include "proxy/session.hpp"
#include "proxy/session_parts.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

#include "protocol/backend.hpp"
#include "protocol/codec.hpp"
#include "protocol/error.hpp"
#include "protocol/frontend.hpp"
#include "protocol/startup.hpp"
#include "proxy/client_auth.hpp"
#include "proxy/logging.hpp"
#include "proxy/params.hpp"
#include "proxy/pool.hpp"
#include "proxy/send_now.hpp"
#include "proxy/worker.hpp"
#include "routing/router.hpp"

namespace meridian::proxy {

using namespace session_parts;  // and its pr, fe_t, be_t, clock

void session::capture_commit_position(server_connection& sc) {
  if (!tx_wrote_ || on_replica_) return;
  if (consistency() != routing::consistency::read_your_writes || mode() != pool_mode::transaction || core_.pinned()) {
    // Reads of this session do not depend on where its writes are (or stay on this connection).
    tx_wrote_ = false;
    return;
  }
  // Inside a transaction this reads a position before the commit, which is harmless: the
  // position that counts is the one read after the batch that ends the transaction.
  pr::fe::serialize(pr::fe::query{"SELECT pg_catalog.pg_current_wal_insert_lsn()"}, server_out_);
  sc.pipeline.sent(pr::pending_request{pr::request_kind::query, true, false, 0, position_tag});
  captured_.reset();
}

void session::capture_position(const pr::frame& m) {
  if (m.type == be_t::data_row) {
    auto row = pr::be::parse_data_row(m.body);
    if (row && row->columns.size() == 1 && row->columns[0]) captured_ = routing::lsn::parse(*row->columns[0]);
  } else if (m.type == be_t::ready_for_query) {
    auto rfq = pr::be::parse_ready_for_query(m.body);
    // Only once the transaction is over does the position cover its commit. Without a
    // position (the query failed), tx_wrote_ stays set and reads go to the primary.
    if (rfq && rfq->status == pr::tx_status::idle && captured_) {
      commit_lsn_ = std::max(commit_lsn_, *captured_);
      tx_wrote_ = false;
    }
    captured_.reset();
  }
}

routing::consistency session::consistency() const {
  if (auto it = meridian_settings_.find("meridian.consistency"); it != meridian_settings_.end() && !it->second.empty())
    if (auto c = routing::parse_consistency(it->second)) return *c;
  if (auto it = meridian_settings_.find("meridian.routing"); it != meridian_settings_.end() && !it->second.empty())
    if (auto c = routing::parse_consistency(it->second)) return *c;
  return default_consistency_;
}

awaitable<bool> session::replica_caught_up(server_connection& sc) {
  const auto deadline = clock::now() + worker_.cfg().read_your_writes_wait;
  // Replay on a nearby replica usually trails a commit by well under a millisecond: ask again
  // soon, then less often.
  auto delay = std::chrono::microseconds(200);
  asio::steady_timer timer(client_.get_executor());
  const std::string sql = "SELECT pg_catalog.pg_last_wal_replay_lsn()";
  for (;;) {
    query_rows rows;
    auto r = co_await sc.run_internal_query(sql, worker_.cfg().max_message_bytes, &rows);
    if (!r) co_return false;
    if (rows.size() == 1 && rows[0].size() == 1) {
      auto replayed = routing::lsn::parse(rows[0][0]);
      if (!replayed) co_return false;  // not in recovery any more: no replica
      if (*replayed >= commit_lsn_) {
        confirmed_node_ = sc.node;
        confirmed_lsn_ = *replayed;
        co_return true;
      }
    }
    if (clock::now() + delay > deadline) co_return false;
    timer.expires_after(delay);
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    delay = std::min<std::chrono::microseconds>(delay * 2, std::chrono::milliseconds(5));
  }
}

routing::route_request session::with_consistency(routing::route_request request) const {
  const auto level = consistency();
  request.split = request.split && level != routing::consistency::primary;
  if (level == routing::consistency::read_your_writes) {
    // A write whose position is not known yet: only the primary surely has it.
    if (tx_wrote_) request.split = false;
    request.min_replay = commit_lsn_;
  }
  return request;
}

}  // namespace meridian::proxy
