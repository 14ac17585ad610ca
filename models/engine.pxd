from models.account cimport AccountState
from models.aggregate cimport GroupState
