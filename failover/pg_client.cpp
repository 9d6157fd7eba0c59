#include "failover/pg_client.hpp"

namespace meridian::failover {

using proxy::error_code;
using proxy::use_awaitable;

pg_client::pg_client(asio::any_io_executor executor)
    : executor_(executor), socket_(executor), timer_(executor) {}

pg_client::~pg_client() { close(); }

void pg_client::close() {
  if (socket_.is_open()) socket_.release();
  if (conn_) PQfinish(conn_);
  conn_ = nullptr;
}

std::string pg_client::error_message(const char* fallback) const {
  std::string m = conn_ ? PQerrorMessage(conn_) : "";
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  // libpq's messages may span lines ("connection to server … failed: Connection refused\n\tIs
  // the server running…"): keep them on one log line.
  for (auto& c : m)
    if (c == '\n' || c == '\t') c = ' ';
  return m.empty() ? fallback : m;
}

awaitable<bool> pg_client::wait(direction d, clock::time_point deadline) {
  const int fd = PQsocket(conn_);
  if (fd < 0) co_return false;
  // The socket is libpq's and may change while connecting: register it for this wait only.
  error_code ec;
  socket_.assign(fd, ec);
  if (ec) co_return false;
  const auto generation = ++wait_generation_;
  bool timed_out = false;
  timer_.expires_at(deadline);
  timer_.async_wait([this, generation, &timed_out](error_code tec) {
    if (tec || generation != wait_generation_) return;
    timed_out = true;
    error_code ignored;
    socket_.cancel(ignored);
  });
  co_await socket_.async_wait(d == direction::read ? asio::posix::stream_descriptor::wait_read
                                                   : asio::posix::stream_descriptor::wait_write,
                              asio::redirect_error(use_awaitable, ec));
  ++wait_generation_;  // a timer handler already queued must not cancel a later wait
  timer_.cancel();
  socket_.release();
  co_return !ec && !timed_out;
}

awaitable<tl::expected<void, std::string>> pg_client::connect(keywords params, clock::time_point deadline) {
  close();
  std::string host;
  for (const auto& [k, v] : params)
    if (k == "host") host = v;
  if (!host.empty() && host[0] != '/') {
    asio::ip::tcp::resolver resolver(executor_);
    error_code ec;
    auto results = co_await resolver.async_resolve(host, "", asio::redirect_error(use_awaitable, ec));
    if (ec || results.empty()) co_return tl::unexpected("cannot resolve host \"" + host + "\": " + ec.message());
    params.emplace_back("hostaddr", results.begin()->endpoint().address().to_string());
  }
  std::vector<const char*> keys;
  std::vector<const char*> values;
  for (const auto& [k, v] : params) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  conn_ = PQconnectStartParams(keys.data(), values.data(), 0);
  if (!conn_) co_return tl::unexpected(std::string("out of memory"));
  if (PQstatus(conn_) == CONNECTION_BAD) {
    auto why = error_message("connection failed");
    close();
    co_return tl::unexpected(why);
  }
  // As libpq documents: start as if PQconnectPoll had asked to wait for writing.
  auto status = PGRES_POLLING_WRITING;
  while (status != PGRES_POLLING_OK) {
    if (status == PGRES_POLLING_FAILED) {
      auto why = error_message("connection failed");
      close();
      co_return tl::unexpected(why);
    }
    if (!co_await wait(status == PGRES_POLLING_READING ? direction::read : direction::write, deadline)) {
      close();
      co_return tl::unexpected(std::string("connection timed out"));
    }
    status = PQconnectPoll(conn_);
  }
  if (PQsetnonblocking(conn_, 1) != 0) {
    auto why = error_message("cannot make the connection non-blocking");
    close();
    co_return tl::unexpected(why);
  }
  co_return tl::expected<void, std::string>{};
}

awaitable<tl::expected<pg_rows, std::string>> pg_client::query(std::string_view sql_view, clock::time_point deadline) {
  if (!conn_) co_return tl::unexpected(std::string("not connected"));
  const std::string sql(sql_view);  // libpq wants it NUL-terminated
  auto fail = [this](std::string why) -> tl::expected<pg_rows, std::string> {
    close();
    return tl::unexpected(std::move(why));
  };
  if (!PQsendQuery(conn_, sql.c_str())) co_return fail(error_message("cannot send the query"));
  for (;;) {
    const int f = PQflush(conn_);
    if (f == 0) break;
    if (f < 0) co_return fail(error_message("cannot send the query"));
    if (!co_await wait(direction::write, deadline)) co_return fail("query timed out");
  }
  pg_rows rows;
  std::optional<std::string> error;
  for (;;) {
    while (PQisBusy(conn_)) {
      if (!co_await wait(direction::read, deadline)) co_return fail("query timed out");
      if (!PQconsumeInput(conn_)) co_return fail(error_message("connection lost"));
    }
    PGresult* r = PQgetResult(conn_);
    if (!r) break;
    const auto st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
      rows.clear();
      for (int i = 0; i < PQntuples(r); ++i) {
        pg_row row;
        for (int j = 0; j < PQnfields(r); ++j) {
          if (PQgetisnull(r, i, j)) {
            row.emplace_back(std::nullopt);
          } else {
            row.emplace_back(std::string(PQgetvalue(r, i, j), static_cast<std::size_t>(PQgetlength(r, i, j))));
          }
        }
        rows.push_back(std::move(row));
      }
    } else if (!error) {
      std::string m = PQresultErrorMessage(r);
      while (!m.empty() && m.back() == '\n') m.pop_back();
      error = m.empty() ? std::string(PQresStatus(st)) : m;
    }
    PQclear(r);
  }
  if (PQstatus(conn_) == CONNECTION_BAD) co_return fail(error ? *error : error_message("connection lost"));
  if (error) co_return tl::unexpected(*error);
  co_return rows;
}

}  // namespace meridian::failover
