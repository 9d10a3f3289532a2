-- pandoc filter making a man page of a docs/man/*.md page: its first line,
-- "# NAME(SECTION)", gives the title and section; the "##" headings below it
-- become the page's sections; links keep their text only (they point into
-- docs/, which a man page reader does not have).
function Pandoc(doc)
	local first = doc.blocks[1]
	if not first or first.t ~= 'Header' or first.level ~= 1 then
		error('a man page starts with "# NAME(SECTION)"')
	end
	local name, section = pandoc.utils.stringify(first):match('^(%S+)%((%d)%)$')
	if not name then
		error('a man page starts with "# NAME(SECTION)", not "' .. pandoc.utils.stringify(first) .. '"')
	end
	doc.blocks:remove(1)
	doc.meta.title = name:upper()
	doc.meta.section = section
	doc.blocks = doc.blocks:walk({
		Header = function(h) h.level = math.max(1, h.level - 1); return h end,
		Link = function(l) return l.content end,
	})
	return doc
end
