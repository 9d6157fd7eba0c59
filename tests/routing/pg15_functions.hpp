#pragma once
// PostgreSQL 15's real function volatilities for classification tests: pg15_function_volatility.txt
// is `SELECT DISTINCT proname, provolatile FROM pg_proc` from the sandbox's server.
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>

#include "routing/classifier.hpp"

namespace meridian::testing {

inline std::shared_ptr<routing::function_volatility> pg15_functions() {
  auto f = std::make_shared<routing::function_volatility>();
  std::ifstream in(std::string(MERIDIAN_TEST_DATA_DIR) + "/routing/pg15_function_volatility.txt");
  if (!in) throw std::runtime_error("pg15_function_volatility.txt is missing");
  std::string name;
  char v;
  while (in >> name >> v) f->add(name, v);
  return f;
}

}  // namespace meridian::testing
