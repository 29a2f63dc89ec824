"""SCP80 over-the-air secured packets (ETSI TS 102 225/226, 3GPP TS 31.115) as a sans-I/O core."""
