#include "nn/batchnorm.h"
