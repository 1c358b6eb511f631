"""romana-neutron-ipam: Neutron's pluggable IPAM driver for romana-rs.

neutron.conf::

    [DEFAULT]
    ipam_driver = romana

    [romana]
    root = http://romana-root.example:9600

The driver class is :class:`romana_neutron_ipam.driver.RomanaPool`, registered under the
``neutron.ipam_drivers`` entry point group as ``romana``.
"""
