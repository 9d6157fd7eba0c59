// Proves the sanitizer build catches what it claims: `probe leak` loses memory, `probe overflow`
// reads past a heap block, `probe signed` overflows a signed integer. Run by sanitizers.probe.*
// with the reports sent elsewhere, each must be reported.
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
#include <string_view>

namespace {
int* volatile sink = nullptr;  // keeps the leaked block from being optimised away
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string_view what = argv[1];
  if (what == "leak") {
    sink = new int[16];
    sink[0] = argc;
    sink = nullptr;  // the only pointer to it is gone
    return 0;
  }
  if (what == "overflow") {
    auto* block = static_cast<char*>(std::malloc(8));
    std::memset(block, 'x', 8);
    char copy[16];
    const std::size_t n = std::strlen(argv[1]) + 1;  // "overflow" and its NUL: 9 bytes out of 8
    std::memcpy(copy, block, n);
    std::free(block);
    return copy[8] == 'x' ? 0 : 1;
  }
  if (what == "signed") {
    volatile int big = std::numeric_limits<int>::max();
    volatile int more = big + argc;
    return more > 0 ? 0 : 1;
  }
  return 2;
}
