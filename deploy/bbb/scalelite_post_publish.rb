#!/usr/bin/ruby
# frozen_string_literal: true

# scalelite-rs recording upload: a drop-in for Scalelite's
# scalelite_post_publish.rb that uploads the recording to the balancer over
# HTTPS instead of rsyncing it into a shared spool. BigBlueButton runs every
# post_publish/*.rb as `ruby <script> -m <record id>`; this one hands the
# work to scalelite-upload.sh, installed next to it (the same directory),
# which packs the same archive, uploads it with retries and keeps it until
# the balancer confirms. Settings: /etc/default/scalelite-upload (see
# scalelite-upload.sh). Exits with the uploader's status.

require 'optparse'

meeting_id = nil
OptionParser.new do |opts|
  opts.on('-m', '--meeting-id MEETING_ID', 'Internal Meeting ID') { |v| meeting_id = v }
  opts.on('-f', '--format FORMAT', 'Recording Format') { |_v| nil }
end.parse!
raise 'Meeting ID was not provided' unless meeting_id

uploader = File.join(__dir__, 'scalelite-upload.sh')
exec('/bin/sh', uploader, '-m', meeting_id)
