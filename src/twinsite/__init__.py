"""twinsite: host-based disaster recovery for applications.

The library does all the work; the Ansible collection ``twinsite.dr`` and the ``twinsite`` CLI are thin
faces over it. Nothing here imports Ansible.
"""

__version__ = "0.1.0"

#: Major version of the JSON contract that ``twinsite ... --json`` prints. Bump it only for
#: incompatible changes; the collection refuses a CLI whose major version it does not know.
JSON_API = 1
