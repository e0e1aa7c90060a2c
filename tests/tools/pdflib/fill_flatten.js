// Fill a fillable PDF with pdf-lib, then flatten it (pdf-lib's form.flatten()): the
// fields are gone, their appearances drawn into the page. Test tool for issue 15.
//   node fill_flatten.js IN.pdf VALUES.json OUT-FLAT.pdf [OUT-FILLED.pdf]
// VALUES: {"field name": "text" | "/State" (a box to tick) | null (left as it is)}
// OUT-FILLED (optional): the filled form as pdf-lib saves it, before flattening (one run
// gives both, so each form is filled by pdf-lib once).
const fs = require("fs");
const { PDFDocument, PDFCheckBox, PDFRadioGroup, PDFTextField } = require("pdf-lib");

async function main() {
  const [input, valuesPath, output, filledOutput] = process.argv.slice(2);
  const doc = await PDFDocument.load(fs.readFileSync(input));
  const values = JSON.parse(fs.readFileSync(valuesPath, "utf8"));
  const form = doc.getForm();
  const skipped = [];
  for (const [name, value] of Object.entries(values)) {
    if (value === null || value === "") continue;
    let field;
    try { field = form.getField(name); } catch (e) { skipped.push(name); continue; }
    try {
      if (field instanceof PDFCheckBox) field.check();
      else if (field instanceof PDFRadioGroup) field.select(value.replace(/^\//, ""));
      else if (field instanceof PDFTextField) field.setText(value);
      else skipped.push(name);
    } catch (e) { skipped.push(name + ": " + e.message); }
  }
  if (filledOutput) fs.writeFileSync(filledOutput, await doc.save());
  form.flatten();
  fs.writeFileSync(output, await doc.save());
  if (skipped.length) process.stderr.write("skipped: " + skipped.join("; ") + "\n");
}
main().catch((e) => { process.stderr.write(String(e.stack || e) + "\n"); process.exit(1); });
