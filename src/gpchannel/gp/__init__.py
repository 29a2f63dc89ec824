"""GlobalPlatform data objects: privileges, life cycles, registry data, install parameters, CPLC, card data,
CAP files."""
