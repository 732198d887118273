#!/usr/bin/env bash
# Writes the OVF 1.0 descriptor of the PASS appliance to stdout (build.sh puts it first in the
# OVA). One virtual system: CPUs, memory, an LSI Logic SCSI controller with the
# streamOptimized VMDK, one or two E1000 NICs (drivers every hypervisor and the Debian kernel
# have), BIOS firmware (the image boots from UEFI too; BIOS is what every importer defaults to).
#   ovf.sh --name N --customer C --site S --cpus 1 --memory-mb 1024 --disk-gb 8 --nics 1
#          --vmdk FILE --vmdk-size BYTES [--populated-size BYTES]
# Elements of each Item are in the schema's (alphabetical) order: ovftool insists on it.
set -euo pipefail

name="" customer="" site="" cpus="" memory="" disk="" nics="" vmdk="" vmdk_size="" populated=""
while [ $# -gt 0 ]; do
  case "$1" in
    --name) name="$2" ;;
    --customer) customer="$2" ;;
    --site) site="$2" ;;
    --cpus) cpus="$2" ;;
    --memory-mb) memory="$2" ;;
    --disk-gb) disk="$2" ;;
    --nics) nics="$2" ;;
    --vmdk) vmdk="$2" ;;
    --vmdk-size) vmdk_size="$2" ;;
    --populated-size) populated="$2" ;;
    *) echo "ovf.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift 2
done
for v in name cpus memory disk nics vmdk vmdk_size; do
  [ -n "${!v}" ] || { echo "ovf.sh: --${v//_/-} is missing" >&2; exit 2; }
done
xml() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g' <<<"$1"; }
populated_attr=""
[ -z "$populated" ] || populated_attr=" ovf:populatedSize=\"$populated\""

cat <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="$(xml "$vmdk")" ovf:id="file1" ovf:size="$vmdk_size"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="$disk" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"$populated_attr/>
  </DiskSection>
  <NetworkSection>
    <Info>The logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The network of eth0 (the static address of the onboarding form)</Description>
    </Network>
EOF
if [ "$nics" = 2 ]; then
  cat <<EOF
    <Network ovf:name="VM Network 2">
      <Description>The network of eth1</Description>
    </Network>
EOF
fi
cat <<EOF
  </NetworkSection>
  <VirtualSystem ovf:id="$(xml "$name")">
    <Info>PASS appliance: the PASS agent on Debian GNU/Linux 12</Info>
    <Name>$(xml "$name")</Name>
    <AnnotationSection>
      <Info>A description of the appliance</Info>
      <Annotation>PASS appliance $(xml "$name") for $(xml "$customer"), $(xml "$site"). Debian GNU/Linux 12; the only inbound port is SSH (if enabled). Console: pass-appliance-status.</Annotation>
    </AnnotationSection>
    <OperatingSystemSection ovf:id="96" vmw:osType="debian12_64Guest">
      <Info>The operating system installed</Info>
      <Description>Debian GNU/Linux 12 (64-bit)</Description>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>$(xml "$name")</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of virtual CPUs</rasd:Description>
        <rasd:ElementName>$cpus virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>$cpus</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory size</rasd:Description>
        <rasd:ElementName>${memory}MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>$memory</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:ElementName>SCSI Controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
EOF
for i in $(seq 1 "$nics"); do
  network="VM Network"
  [ "$i" = 1 ] || network="VM Network $i"
  cat <<EOF
      <Item>
        <rasd:AddressOnParent>$((6 + i))</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>$network</rasd:Connection>
        <rasd:Description>E1000 ethernet adapter on "$network" (eth$((i - 1)) in the appliance)</rasd:Description>
        <rasd:ElementName>Network adapter $i</rasd:ElementName>
        <rasd:InstanceID>$((4 + i))</rasd:InstanceID>
        <rasd:ResourceSubType>E1000</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
EOF
done
cat <<EOF
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="bios"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
EOF
