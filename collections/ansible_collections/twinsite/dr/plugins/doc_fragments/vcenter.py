# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  hostname:
    description:
      - The vCenter server's name or address.
      - If not set, the environment variable E(TWINSITE_VCENTER_HOSTNAME) is used.
    type: str
  port:
    description:
      - The vCenter server's HTTPS port.
      - If not set, the environment variable E(TWINSITE_VCENTER_PORT) is used.
    type: int
    default: 443
  username:
    description:
      - The vCenter user (see docs/vsphere.md for the privileges it needs).
      - If not set, the environment variable E(TWINSITE_VCENTER_USERNAME) is used.
    type: str
    aliases: [user]
  password:
    description:
      - The vCenter user's password. Keep it in Ansible Vault; it is never logged.
      - If not set, the environment variable E(TWINSITE_VCENTER_PASSWORD) is used.
    type: str
    aliases: [pass, pwd]
  validate_certs:
    description:
      - Verify vCenter's TLS certificate. Turn this off only for a lab; prefer O(ca_file).
      - If not set, the environment variable E(TWINSITE_VCENTER_VALIDATE_CERTS) is used.
    type: bool
    default: true
  ca_file:
    description:
      - A PEM file of the CA that signed vCenter's certificate, when it is not among the system's CAs.
      - If not set, the environment variable E(TWINSITE_VCENTER_CA_FILE) is used.
    type: path
  timeout:
    description:
      - Seconds to wait for vCenter to answer (connecting, and each request).
      - If not set, the environment variable E(TWINSITE_VCENTER_TIMEOUT) is used.
    type: float
    default: 30.0
requirements:
  - the twinsite library (and pyVmomi) on the controller, in the Python that runs the module
notes:
  - Runs where vCenter is reachable, usually the controller (C(delegate_to) localhost or a play on localhost).
"""
