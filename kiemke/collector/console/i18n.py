"""Vietnamese by default, English on request (the language link sets a cookie).

Templates write the English text, `_("Overview")`; VI holds the Vietnamese for each.
tests/test_console_pages.py checks every `_()` text of the templates has its entry.
"""

from __future__ import annotations

from flask import g, request

LANG_COOKIE = "kiemke_lang"
LANGS = ("vi", "en")


def current_lang() -> str:
    cached = getattr(g, "lang", None)
    if cached is None:
        wanted = request.cookies.get(LANG_COOKIE, "vi")
        cached = g.lang = wanted if wanted in LANGS else "vi"
    return cached  # type: ignore[no-any-return]


def gettext(text: str, **values: object) -> str:
    out = VI.get(text, text) if current_lang() == "vi" else text
    return out.format(**values) if values else out


def pick(titles: dict[str, str] | None) -> str:
    """A {vi, en} title in the page's language."""
    if not titles:
        return ""
    return titles.get(current_lang()) or titles.get("en") or titles.get("vi") or ""


VI: dict[str, str] = {
    '2026-11 (month), 2026-Q4 (quarter), 2026 (year) or 2026-11-01..2026-11-15':
        '2026-11 (tháng), 2026-Q4 (quý), 2026 (năm) hoặc 2026-11-01..2026-11-15',
    'A number from 1 to 100000, or empty for no limit.':
        'Một số từ 1 đến 100000, hoặc để trống nếu không giới hạn.',
    'A number of days from 1 to 365, or empty for no expiry.':
        'Số ngày từ 1 đến 365, hoặc để trống nếu không hết hạn.',
    'A waiver exempts one machine from one rule until its last day, with a reason. The machine then counts as exempt, outside the ratio.':
        'Miễn trừ cho một máy khỏi một quy tắc đến hết ngày cuối, có lý do. Khi đó máy được tính là miễn trừ, nằm ngoài tỷ lệ.',
    'A waiver lasts at most three years; grant a new one then.':
        'Miễn trừ kéo dài tối đa ba năm; khi đó hãy cấp miễn trừ mới.',
    'Actions':
        'Thao tác',
    'Add':
        'Thêm',
    'Add a person':
        'Thêm người dùng',
    'Age':
        'Tuổi máy',
    'Agent version':
        'Phiên bản agent',
    'Agents':
        'Agent',
    "An agent installed with an enrolment token joins the token's unit. Give the token to whoever installs the agents; revoke it when they are done.":
        'Agent cài bằng mã đăng ký sẽ thuộc đơn vị của mã. Đưa mã cho người cài đặt agent; thu hồi mã khi đã cài xong.',
    'Applies to':
        'Áp dụng cho',
    'Asset and depreciation':
        'Tài sản và khấu hao',
    'At least 10 characters.':
        'Ít nhất 10 ký tự.',
    'At period end':
        'Cuối kỳ',
    'Audit log':
        'Nhật ký thay đổi',
    'Back to the overview':
        'Về trang tổng quan',
    'Category':
        'Loại tài sản',
    'Change':
        'Thay đổi',
    'Change of rank':
        'Thay đổi thứ hạng',
    'Change password':
        'Đổi mật khẩu',
    'Choose a role.':
        'Chọn vai trò.',
    'Choose one of your units.':
        'Chọn một đơn vị trong phạm vi của bạn.',
    'Choose the rule the machine is exempted from.':
        'Chọn quy tắc được miễn trừ.',
    'Choose…':
        'Chọn…',
    'Compliance':
        'Tỷ lệ đạt',
    'Compliance = pass / (pass + fail + unknown) over active machines. Gap = machines still to bring into compliance to reach the target.':
        'Tỷ lệ đạt = đạt / (đạt + không đạt + chưa rõ) trên các máy đang hoạt động. Còn thiếu = số máy cần khắc phục thêm để đạt chỉ tiêu.',
    'Condition':
        'Điều kiện',
    'Cost / book value':
        'Nguyên giá / giá trị còn lại',
    'Create token':
        'Tạo mã',
    'Current password':
        'Mật khẩu hiện tại',
    'Daily compliance (solid line) against the target (dashed).':
        'Tỷ lệ đạt hằng ngày (đường liền) so với chỉ tiêu (đường đứt).',
    'Daily compliance over the last {n} days (solid line) against the target (dashed).':
        'Tỷ lệ đạt hằng ngày trong {n} ngày qua (đường liền) so với chỉ tiêu (đường đứt).',
    'Days':
        'Số ngày',
    'Days in period':
        'Số ngày trong kỳ',
    'Depreciation status':
        'Tình trạng khấu hao',
    'Description':
        'Mô tả',
    'Details':
        'Chi tiết',
    'Disable':
        'Khóa',
    'Disable {name}':
        'Khóa {name}',
    'Download':
        'Tải về',
    'Each enrolled agent has its own credential. Revoke it when a machine is retired or its credential may have leaked; the agent then has to enrol again.':
        'Mỗi agent đã đăng ký có khóa riêng. Thu hồi khi máy ngừng sử dụng hoặc khóa có thể bị lộ; agent sẽ phải đăng ký lại.',
    'Empty: no expiry.':
        'Để trống: không hết hạn.',
    'Empty: no limit.':
        'Để trống: không giới hạn.',
    'Enrolled':
        'Đăng ký lúc',
    'Enrolment tokens':
        'Mã đăng ký',
    'Enter your login name.':
        'Nhập tên đăng nhập.',
    'Enter your password.':
        'Nhập mật khẩu.',
    'Every change, with who made it and when. Newest first.':
        'Mọi thay đổi, ai thực hiện và khi nào. Mới nhất trước.',
    'Exempt':
        'Miễn trừ',
    'Expires':
        'Hết hạn',
    'Fact':
        'Dữ kiện',
    'Facts the rules read':
        'Dữ kiện các quy tắc sử dụng',
    'Fail':
        'Không đạt',
    'Failing':
        'Không đạt',
    'Figures':
        'Số liệu',
    'Figures as of {t}':
        'Số liệu lúc {t}',
    'Find':
        'Tìm',
    'Find a machine':
        'Tìm máy',
    'First seen':
        'Lần đầu thấy',
    'From {first} to {last}':
        'Từ {first} đến {last}',
    'Full name':
        'Họ và tên',
    'Fully depreciated on':
        'Hết khấu hao ngày',
    'Fully depreciated, still in service':
        'Đã hết khấu hao, vẫn đang sử dụng',
    'Gap':
        'Còn thiếu',
    'Give the last day of the waiver as a date.':
        'Nhập ngày cuối của miễn trừ.',
    'Give the machine (its id or exact hostname).':
        'Nhập máy (mã máy hoặc đúng tên máy).',
    'Give the reason: it is shown with the exempt result.':
        'Nhập lý do: lý do được hiển thị cùng kết quả miễn trừ.',
    'Grace period':
        'Thời gian ân hạn',
    'Grant a waiver':
        'Cấp miễn trừ',
    'Grant waiver':
        'Cấp miễn trừ',
    'Granted':
        'Cấp lúc',
    'Granted by':
        'Người cấp',
    'Hide revoked credentials':
        'Ẩn các khóa đã thu hồi',
    'History':
        'Lịch sử',
    'Hostname':
        'Tên máy',
    'Hostname or machine id':
        'Tên máy hoặc mã máy',
    'IT inventory and compliance of your units. Use the name and password your administrator gave you.':
        'Kiểm kê thiết bị CNTT và mức độ tuân thủ của đơn vị. Dùng tên và mật khẩu quản trị viên đã cấp.',
    'In service since':
        'Sử dụng từ',
    'Kind of change':
        'Loại thay đổi',
    'Last day of the waiver':
        'Ngày cuối của miễn trừ',
    'Last login':
        'Đăng nhập gần nhất',
    'Last report':
        'Báo cáo gần nhất',
    'Last {n} days':
        '{n} ngày qua',
    'Log in':
        'Đăng nhập',
    'Log in to kiemke':
        'Đăng nhập kiemke',
    'Log out':
        'Đăng xuất',
    'Login name':
        'Tên đăng nhập',
    'Machine':
        'Máy',
    'Machine (id or exact hostname)':
        'Máy (mã máy hoặc đúng tên máy)',
    'Machines':
        'Máy tính',
    'Machines failing critical rules at period end':
        'Máy không đạt quy tắc nghiêm trọng vào cuối kỳ',
    'Machines reporting at period end':
        'Máy gửi báo cáo vào cuối kỳ',
    'Main menu':
        'Menu chính',
    'Mean':
        'Trung bình',
    'Move':
        'Chuyển',
    'Move to another unit':
        'Chuyển sang đơn vị khác',
    'Name':
        'Tên',
    'New password':
        'Mật khẩu mới',
    'New password again':
        'Nhập lại mật khẩu mới',
    'New token':
        'Mã mới',
    'Next':
        'Sau',
    'No daily history yet: the first snapshot is written by the maintenance pass.':
        'Chưa có lịch sử hằng ngày: bản ghi đầu tiên do lượt bảo trì định kỳ ghi.',
    'No depreciation data for this machine yet.':
        'Chưa có dữ liệu khấu hao cho máy này.',
    'No machine in your units matches.':
        'Không có máy nào trong đơn vị của bạn khớp.',
    'No machine with this id or hostname in your units.':
        'Không có máy với mã hoặc tên này trong đơn vị của bạn.',
    'None.':
        'Không có.',
    'Not allowed':
        'Không được phép',
    'Not applicable':
        'Không áp dụng',
    'Not found':
        'Không tìm thấy',
    'Note':
        'Ghi chú',
    'Number of agents':
        'Số agent',
    'On':
        'Đối tượng',
    'Overview':
        'Tổng quan',
    'Pages':
        'Trang',
    'Pass':
        'Đạt',
    'Password':
        'Mật khẩu',
    'Password again':
        'Nhập lại mật khẩu',
    'People':
        'Người dùng',
    'Period':
        'Kỳ báo cáo',
    'Period report':
        'Báo cáo định kỳ',
    'Platform':
        'Nền tảng',
    'Previous':
        'Trước',
    'Rank':
        'Hạng',
    'Ranking':
        'Xếp hạng',
    'Ranking of its units':
        'Xếp hạng các đơn vị trực thuộc',
    'Reason':
        'Lý do',
    'Register entry':
        'Dòng trong sổ tài sản',
    'Report received ({kind})':
        'Nhận báo cáo ({kind})',
    'Reporting':
        'Gửi báo cáo',
    'Reporting and depreciation':
        'Báo cáo của máy và khấu hao',
    'Reports':
        'Báo cáo',
    'Result':
        'Kết quả',
    'Results per rule':
        'Kết quả theo quy tắc',
    'Revoke':
        'Thu hồi',
    'Revoke the credential of {host}':
        'Thu hồi khóa của {host}',
    'Revoke token {id}':
        'Thu hồi mã {id}',
    'Revoke waiver {id}':
        'Thu hồi miễn trừ {id}',
    'Role':
        'Vai trò',
    'Rule':
        'Quy tắc',
    'Rules':
        'Quy tắc',
    'Rules against their targets':
        'Các quy tắc so với chỉ tiêu',
    'Score':
        'Điểm',
    'Several machines have this hostname; give the machine id.':
        'Nhiều máy có tên này; hãy nhập mã máy.',
    'Severity':
        'Mức độ',
    'Show':
        'Xem',
    'Show revoked credentials too':
        'Hiện cả các khóa đã thu hồi',
    'Show the trend of {title}':
        'Xem xu hướng của {title}',
    'Since':
        'Từ lúc',
    'Skip to content':
        'Bỏ qua đến nội dung',
    'Something in the request is wrong. Nothing was changed.':
        'Yêu cầu có chỗ không hợp lệ. Không có gì bị thay đổi.',
    'Source':
        'Căn cứ',
    'Stale':
        'Mất liên lạc',
    'State':
        'Trạng thái',
    'Status':
        'Đánh giá',
    'Summary':
        'Tóm tắt',
    'Target':
        'Chỉ tiêu',
    'The form was sent without its security token (it may have been open too long, or sent from another site). Nothing was changed. Open the page again and resend the form.':
        'Biểu mẫu được gửi thiếu mã bảo mật (có thể đã mở quá lâu, hoặc gửi từ trang khác). Không có gì bị thay đổi. Hãy mở lại trang và gửi lại.',
    'The last day must be today or later.':
        'Ngày cuối phải từ hôm nay trở đi.',
    'The name or the password is wrong.':
        'Tên đăng nhập hoặc mật khẩu không đúng.',
    'The request was refused':
        'Yêu cầu bị từ chối',
    'The two new passwords differ.':
        'Hai mật khẩu mới không giống nhau.',
    'There is no such page, unit, rule or machine.':
        'Không có trang, đơn vị, quy tắc hoặc máy này.',
    'This account is disabled. Ask an administrator.':
        'Tài khoản đã bị khóa. Hãy liên hệ quản trị viên.',
    'This account is locked for 15 minutes after repeated wrong passwords. Wait, or ask an administrator to set a new password.':
        'Tài khoản tạm khóa 15 phút do nhập sai mật khẩu nhiều lần. Hãy chờ, hoặc nhờ quản trị viên đặt mật khẩu mới.',
    'This is not your current password.':
        'Đây không phải mật khẩu hiện tại của bạn.',
    'This page belongs to a unit outside your units, or needs a role you do not have. Ask an administrator if you need it.':
        'Trang này thuộc đơn vị ngoài phạm vi của bạn, hoặc cần vai trò bạn không có. Hãy liên hệ quản trị viên nếu cần.',
    'Times are local time':
        'Thời gian theo giờ địa phương',
    'To replace in {year}':
        'Cần thay thế trong năm {year}',
    'Token':
        'Mã',
    'Token {id} for {unit}. It is shown only now: copy it.':
        'Mã {id} cho {unit}. Mã chỉ hiển thị lần này: hãy sao chép.',
    'Tokens':
        'Các mã',
    'Too many failed logins from this computer. Wait 15 minutes, then try again.':
        'Máy này đăng nhập sai quá nhiều lần. Hãy chờ 15 phút rồi thử lại.',
    'Trend':
        'Xu hướng',
    'Trend over a year':
        'Xu hướng trong một năm',
    'Unit':
        'Đơn vị',
    'Unit path':
        'Đường dẫn đơn vị',
    'Units side by side':
        'So sánh các đơn vị',
    'Units under':
        'Các đơn vị thuộc',
    'Unknown':
        'Chưa rõ',
    'Until':
        'Đến',
    'Used':
        'Đã dùng',
    'Useful life':
        'Thời gian sử dụng',
    'Valid for (days)':
        'Hiệu lực (ngày)',
    'Value':
        'Giá trị',
    'Viewer: reads the figures of their units. Unit manager: also grants waivers, makes enrolment tokens and moves machines. Administrator: everything. Each sees only their unit and the units under it.':
        'Người xem: xem số liệu của đơn vị mình. Quản lý đơn vị: thêm cấp miễn trừ, tạo mã đăng ký và chuyển máy. Quản trị viên: mọi việc. Mỗi người chỉ thấy đơn vị của mình và các đơn vị trực thuộc.',
    'Waiver {id} for {rule} by {author}: {reason}':
        'Miễn trừ {id} cho {rule}, người cấp {author}: {reason}',
    'Waiver {id} revoked':
        'Miễn trừ {id} bị thu hồi',
    'Waivers':
        'Miễn trừ',
    'Waivers active in the period':
        'Miễn trừ có hiệu lực trong kỳ',
    'What':
        'Thay đổi',
    'What the rule checks':
        'Quy tắc kiểm tra gì',
    'When':
        'Thời điểm',
    'Who':
        'Người thực hiện',
    'Whole organisation':
        'Toàn hệ thống',
    'Worst day':
        'Ngày thấp nhất',
    'Your password was changed. Your other sessions were logged out.':
        'Đã đổi mật khẩu. Các phiên đăng nhập khác đã bị đăng xuất.',
    'active':
        'đang hoạt động',
    'active machines':
        'máy đang hoạt động',
    'age estimated from firmware: no asset register entry':
        'tuổi ước tính theo firmware: không có trong sổ tài sản',
    'agents':
        'agent',
    'all':
        'tất cả',
    'below target':
        'chưa đạt chỉ tiêu',
    'compliance':
        'tỷ lệ đạt',
    'days':
        'ngày',
    'disabled':
        'đã khóa',
    'expired':
        'hết hạn',
    'line':
        'dòng',
    'meets target':
        'đạt chỉ tiêu',
    'months':
        'tháng',
    'no data':
        'chưa có số liệu',
    'not evaluated':
        'chưa đánh giá',
    'revoked':
        'đã thu hồi',
    'rule set':
        'bộ quy tắc',
    'stale machines (no report within the stale window; not in the ratios)':
        'máy mất liên lạc (không gửi báo cáo trong thời hạn; không tính vào tỷ lệ)',
    'stale: no report within the stale window':
        'mất liên lạc: không gửi báo cáo trong thời hạn',
    'still to bring into compliance':
        'máy còn phải khắc phục',
    'target':
        'chỉ tiêu',
    'the period has not ended: figures up to the last closed day':
        'kỳ chưa kết thúc: số liệu đến ngày đã chốt gần nhất',
    'unit rule (offices)':
        'quy tắc đơn vị (cơ quan)',
    'units of {name}':
        'các đơn vị thuộc {name}',
    'until':
        'đến',
    'waivers':
        'miễn trừ',
    'years':
        'năm',
    '{action} by {actor}':
        '{action} bởi {actor}',
    '{rule}: became {result}':
        '{rule}: chuyển sang {result}',
    '{title}: no daily history yet':
        '{title}: chưa có lịch sử hằng ngày',
    '{title}: {first} on {first_day}, {last} on {last_day}':
        '{title}: {first} ngày {first_day}, {last} ngày {last_day}',
    '{title}: {value} against a target of {target}':
        '{title}: {value} so với chỉ tiêu {target}',
    '✓ meets the target, ✗ below it, – nothing measured.':
        '✓ đạt chỉ tiêu, ✗ chưa đạt, – chưa có số liệu.',
    'pass':
        'đạt',
    'fail':
        'không đạt',
    'unknown':
        'chưa rõ',
    'not_applicable':
        'không áp dụng',
    'exempt':
        'miễn trừ',
    'critical':
        'nghiêm trọng',
    'high':
        'cao',
    'medium':
        'trung bình',
    'low':
        'thấp',
    'admin':
        'quản trị viên',
    'manager':
        'quản lý đơn vị',
    'viewer':
        'người xem',
    'periodic':
        'định kỳ',
    'full':
        'đầy đủ',
    'used up':
        'đã dùng hết',
    'in_service':
        'trong thời gian khấu hao',
    'fully_depreciated':
        'đã hết khấu hao',
    'overdue':
        'quá hạn thay thế',
    'waiver':
        'miễn trừ',
    'machine':
        'máy',
    'unit':
        'đơn vị',
    'enrolment_token':
        'mã đăng ký',
    'agent':
        'agent',
    'token':
        'mã API',
    'user':
        'người dùng',
    'assets':
        'sổ tài sản',
    'waiver.add':
        'cấp miễn trừ',
    'waiver.revoke':
        'thu hồi miễn trừ',
    'machine.move':
        'chuyển máy',
    'unit.add':
        'thêm đơn vị',
    'unit.rename':
        'đổi tên đơn vị',
    'unit.move':
        'chuyển đơn vị',
    'enrolment_token.add':
        'tạo mã đăng ký',
    'enrolment_token.revoke':
        'thu hồi mã đăng ký',
    'agent.revoke':
        'thu hồi agent',
    'token.add':
        'tạo mã API',
    'token.revoke':
        'thu hồi mã API',
    'user.add':
        'thêm người dùng',
    'user.disable':
        'khóa người dùng',
    'user.password':
        'đổi mật khẩu',
    'user.lock':
        'tạm khóa do sai mật khẩu',
    'assets.import':
        'nhập sổ tài sản',
    'the password must have at least 10 characters':
        'mật khẩu phải có ít nhất 10 ký tự',
    'the password is limited to 256 characters':
        'mật khẩu tối đa 256 ký tự',
    'the password must not be the login name':
        'mật khẩu không được trùng tên đăng nhập',
    'give the login name':
        'nhập tên đăng nhập',
    'a login name has no spaces and at most 64 characters (e.g. lan.nguyen)':
        'tên đăng nhập không có dấu cách và tối đa 64 ký tự (ví dụ lan.nguyen)',
}
