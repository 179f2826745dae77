// The counters and the content probe of umsnet_fast/weight_watch.py in one C++ call (part of
// umsnet_fast._cpu; the Python classes there are its reference and its fallback).
#pragma once

#include <torch/extension.h>

namespace umsnet_fast {

void bind_weight_watch(pybind11::module_& mod);

}  // namespace umsnet_fast
