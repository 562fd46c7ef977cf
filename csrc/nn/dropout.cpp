#include "nn/dropout.h"
