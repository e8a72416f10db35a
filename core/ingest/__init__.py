"""Everything that turns an outside source into legs for core: the SIP/SIPREC recorder
bridge of the daemon, and the offline recorder (`callqa receive`) and pcap import.

* `core.ingest.sip_bridge`: the daemon's SIP server sessions fed into the live engine.
* `core.ingest.receive`: recorded calls of `callqa receive` and `callqa import-pcap`,
  scored and stored.
"""
